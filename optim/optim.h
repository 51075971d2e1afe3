#pragma once
// Umbrella header of dtrain_optim: optimizers, learning-rate schedules, gradient clipping and
// loss scaling.
#include "optim/adam.h"
#include "optim/adamw.h"
#include "optim/clip_grad.h"
#include "optim/loss_scaler.h"
#include "optim/lr_schedule.h"
#include "optim/master_weight_adamw.h"
#include "optim/optimizer.h"
#include "optim/sgd.h"
#include "optim/state_dict.h"
