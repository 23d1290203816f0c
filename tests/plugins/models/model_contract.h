/*
 * model_contract.h - behaviour every bp_model_type must have, checked the same way for each
 * model, plus small helpers shared by the model tests (loading football-data seasons).
 *
 * The contract (model_contract_check):
 *   - params: the published schema is JSON with additionalProperties false, every property's
 *     default is accepted by create(), an unknown key is refused naming it;
 *   - predict and save before any fit return BP_E_STATE;
 *   - fit returns a metrics object; predictions are three finite probabilities summing to 1;
 *   - an unknown team gives BP_E_NOTFOUND naming the team id;
 *   - save -> text -> load into a fresh instance predicts bit-for-bit the same;
 *   - a state with another state_version is refused with a message naming both versions, and
 *     the instance keeps predicting as before;
 *   - a fit on bad data (unsorted, too few matches, a NaN or infinite price in any of the three
 *     odds) fails with BP_E_INVAL naming the problem (the match, for odds) and leaves the
 *     previous fit in place;
 *   - a team with no games in the training set gets BP_E_NOTFOUND naming it, at home or away,
 *     even when an earlier fit knew it.
 */
#ifndef BP_TEST_MODEL_CONTRACT_H
#define BP_TEST_MODEL_CONTRACT_H

#include <stddef.h>
#include <stdint.h>

#include "betpipe/plugin.h"
#include "betpipe/registry.h"

#include "fd_matches.h"

/* Append E0 seasons first..last (start years) to *m / *n with odds from `odds_prefix` (NULL for
 * none); ids come from `teams`. Fails the test on error. */
void mc_load_e0(fd_teams *teams, int first, int last, const char *odds_prefix, bp_match_result **m,
                size_t *n);

/* Create an instance from params given as JSON text (NULL = no params); fails the test on
 * error. */
void *mc_create(const bp_model_type *type, const char *params_json);

/* Run the contract on `type` with params (JSON text or NULL), training on matches[0..n) and
 * predicting home v away (two teams of the set). */
void model_contract_check(const bp_model_type *type, const char *params_json,
                          const bp_match_result *matches, size_t n, int64_t home, int64_t away);

#endif
