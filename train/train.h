#pragma once
// Umbrella header of train/: what a training loop keeps besides model and optimizer, checkpoints
// that save and restore all of it, weights-only loading, and (dtrain_trainer, above dist) the
// trainer with its progress line.
#include "train/checkpoint.h"
#include "train/checkpoint_metadata.h"
#include "train/checkpoint_names.h"
#include "train/checkpoint_rotation.h"
#include "train/load_weights.h"
#include "train/metrics_log.h"
#include "train/optimizer_choice.h"
#include "train/trainer.h"
#include "train/trainer_checkpoint_source.h"
#include "train/trainer_progress_line.h"
#include "train/trainer_step_log.h"
#include "train/training_state.h"
