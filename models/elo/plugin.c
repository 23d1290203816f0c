/*
 * plugin.c - model-elo.so: registers the Elo model.
 */
#include "bpm_plugin.h"
#include "elo.h"

BPM_MODEL_PLUGIN("elo", "1.0.0", "ClubElo-style Elo ratings with an ordered-logit 1X2 link",
                 bpm_elo_type)
