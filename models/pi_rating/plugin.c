/*
 * plugin.c - model-pi_rating.so: registers the pi-rating model.
 */
#include "bpm_plugin.h"
#include "pi_rating.h"

BPM_MODEL_PLUGIN("pi_rating", "1.0.0",
                 "pi-ratings (Constantinou & Fenton) with an ordered-logit "
                 "1X2 link",
                 bpm_pi_rating_type)
