#pragma once
// Umbrella header of dtrain_train: what a training loop keeps besides model and optimizer, and
// checkpoints that save and restore all of it.
#include "train/checkpoint.h"
#include "train/checkpoint_metadata.h"
#include "train/checkpoint_names.h"
#include "train/training_state.h"
