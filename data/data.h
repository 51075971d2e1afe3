#pragma once
// Umbrella header of dtrain_data: datasets, samplers and the DataLoader.
#include "data/collate.h"
#include "data/dataloader.h"
#include "data/dataset.h"
#include "data/fashion_mnist.h"
#include "data/idx.h"
#include "data/sampler.h"
#include "data/shuffle.h"
#include "data/token_corpus.h"
#include "data/token_dataset.h"
#include "data/tokens.h"
