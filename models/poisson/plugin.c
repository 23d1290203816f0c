/*
 * plugin.c - model-poisson.so: registers Maher's independent-Poisson model.
 */
#include "bpm_plugin.h"
#include "poisson.h"

BPM_MODEL_PLUGIN("poisson", "1.0.0", "Maher independent-Poisson goal model (maximum likelihood)",
                 bpm_poisson_type)
