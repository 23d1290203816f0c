/*
 * plugin.c - model-ensemble.so: registers the ensemble (members linked in as static libraries).
 */
#include "bpm_plugin.h"
#include "ensemble.h"

BPM_MODEL_PLUGIN("ensemble", "1.0.0",
                 "weighted blend of models with weights minimising walk-forward RPS",
                 bpm_ensemble_type)
