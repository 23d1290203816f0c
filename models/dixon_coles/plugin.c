/*
 * plugin.c - model-dixon_coles.so: registers the Dixon-Coles model.
 */
#include "bpm_plugin.h"
#include "dixon_coles.h"

BPM_MODEL_PLUGIN("dixon_coles", "1.0.0", "Dixon-Coles goal model (maximum likelihood, GSL)",
                 bpm_dixon_coles_type)
