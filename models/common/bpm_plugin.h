/*
 * bpm_plugin.h - the thin plugin around a model library.
 *
 * Each model lives in a static library (bp_model_<name>) that exports its bp_model_type, so the
 * ensemble and the benchmarks can link it directly; the plugin .c file only registers that
 * descriptor. BPM_MODEL_PLUGIN(name, version, description, type) writes init, fini and the entry
 * point: init registers exactly one model and keeps no state.
 */
#ifndef BPM_PLUGIN_H
#define BPM_PLUGIN_H

#include "betpipe/plugin.h"
#include "betpipe/registry.h"

#define BPM_MODEL_PLUGIN(pname, pversion, pdescription, ptype)                                     \
    static int bpm_plugin_init_(const bp_host *host, bp_registry *reg, void **out_state,           \
                                bp_error *err)                                                     \
    {                                                                                              \
        (void)host;                                                                                \
        *out_state = NULL;                                                                         \
        return reg->add_model(reg, &(ptype), err);                                                 \
    }                                                                                              \
    static void bpm_plugin_fini_(void *state)                                                      \
    {                                                                                              \
        (void)state;                                                                               \
    }                                                                                              \
    BP_PLUGIN_DEFINE(pname, pversion, pdescription, bpm_plugin_init_, bpm_plugin_fini_)

#endif
