/*
 * plugin.c - model-random_forest.so: registers the random forest model.
 */
#include "bpm_plugin.h"
#include "random_forest.h"

BPM_MODEL_PLUGIN("random_forest", "1.0.0",
                 "random forest on engineered features with out-of-bag scoring",
                 bpm_random_forest_type)
