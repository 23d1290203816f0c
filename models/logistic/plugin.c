/*
 * plugin.c - model-logistic.so: registers the multinomial logistic regression model.
 */
#include "bpm_plugin.h"
#include "logistic.h"

BPM_MODEL_PLUGIN("logistic", "1.0.0", "multinomial logistic regression on engineered features",
                 bpm_logistic_type)
