/*
 * random_forest.h - a random forest of classification trees (Breiman 2001) on the engineered
 * match features of bpm_features.h, predicting home win / draw / away win.
 *
 * Each tree grows on a bootstrap sample of the training rows: at every node it tries mtry
 * randomly chosen features and splits where the Gini impurity drops most, until max_depth, or a
 * node smaller than 2 min_leaf, or a pure node. A leaf predicts its class frequencies; the forest
 * averages the leaves its trees reach. To make split search linear in the node size, each
 * feature is cut once per fit into up to `bins` quantile bins (as histogram-based forests do);
 * thresholds are stored as feature values, so prediction needs no bins.
 *
 * The rows a tree did not draw are its out-of-bag rows: fit() scores every training row with the
 * trees that never saw it and reports the out-of-bag RPS, log loss and accuracy in its metrics -
 * an honest estimate of the forest's quality without a separate test set.
 *
 * Parameters: n_trees (200), max_depth (10), min_leaf (25), mtry (0 = round(sqrt(features))),
 * bins (32), seed (1; the forest is deterministic for a given seed and data), and the feature
 * parameters of bpm_features.h.
 */
#ifndef BPM_RANDOM_FOREST_H
#define BPM_RANDOM_FOREST_H

#include "betpipe/registry.h"

#define BPM_RANDOM_FOREST_STATE_VERSION 1

extern const bp_model_type bpm_random_forest_type;

#endif
