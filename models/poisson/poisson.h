/*
 * poisson.h - Maher's model (Maher 1982): independent Poisson goals with attack, defence and
 * home-advantage ratings, exponential time decay, fitted by maximum likelihood. It is Dixon-Coles
 * with rho fixed at 0 (see models/common/bpm_goals.h).
 */
#ifndef BPM_POISSON_H
#define BPM_POISSON_H

#include "betpipe/registry.h"

#define BPM_POISSON_STATE_VERSION 1

extern const bp_model_type bpm_poisson_type;

#endif
