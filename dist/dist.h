#pragma once
// Umbrella header of dtrain_dist: bootstrap, process groups and collectives, data parallelism.
#include "dist/checkpoint/checkpoint.h"
#include "dist/collective_checker.h"
#include "dist/comm_hooks.h"
#include "dist/ddp.h"
#include "dist/device_choice.h"
#include "dist/distributed_sampler.h"
#include "dist/init.h"
#include "dist/model_averaging/model_averaging.h"
#include "dist/process_group.h"
#include "dist/terminal_output.h"
#include "dist/work.h"
#include "dist/zero/zero.h"
