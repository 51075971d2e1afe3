#pragma once
// Everything a dtrain user needs, in one include.
#include "autograd/autograd.h"
#include "core/core.h"
#include "data/data.h"
#include "dist/dist.h"
#include "layers/layers.h"
#include "optim/optim.h"
#include "train/train.h"
