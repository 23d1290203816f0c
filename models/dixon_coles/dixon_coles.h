/*
 * dixon_coles.h - the Dixon-Coles model (Dixon & Coles 1997): Poisson goals with the low-score
 * correction tau(rho), attack/defence/home ratings, exponential time decay, fitted by maximum
 * likelihood (see models/common/bpm_goals.h for the definition and the optimiser).
 */
#ifndef BPM_DIXON_COLES_H
#define BPM_DIXON_COLES_H

#include "betpipe/registry.h"

#define BPM_DIXON_COLES_STATE_VERSION 1

/* The model descriptor; the plugin registers it, the ensemble and benchmarks call it directly. */
extern const bp_model_type bpm_dixon_coles_type;

#endif
