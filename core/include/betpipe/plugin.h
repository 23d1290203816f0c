/*
 * betpipe/plugin.h - the plugin descriptor and its single exported entry point.
 *
 * Part of the plugin ABI (see ABI.md beside this file for the change procedure).
 *
 * A plugin is a shared object that exports exactly one symbol:
 *
 *     const bp_plugin *bp_plugin_entry(void);
 *
 * It returns a pointer to a static descriptor. The loader checks the descriptor's frozen header
 * (magic, ABI major/minor, size, build signature) before it reads anything else, then calls
 * init(), inside which - and only inside which - the plugin registers its capabilities (job types,
 * models, collectors, notifiers) through the registry. If init fails, everything the plugin
 * registered is rolled back and the object is unloaded; fini() runs only after a successful init.
 *
 * Use BP_PLUGIN_DEFINE() (bottom of this file) rather than writing the entry point by hand.
 */
#ifndef BETPIPE_PLUGIN_H
#define BETPIPE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "betpipe/status.h"

#define BP_PLUGIN_MAGIC 0x4250504cu /* "BPPL" */
#define BP_ABI_MAJOR    1
#define BP_ABI_MINOR    0

#define BP_STR_(x) #x
#define BP_STR(x)  BP_STR_(x)

/* The build signature records the type sizes the descriptor layout depends on (nginx does the
 * same). A plugin built with another data model (ILP32, 32-bit time_t) is refused even when the
 * magic and version numbers happen to match. */
#define BP_BUILD_SIG                                                                               \
    "bp" BP_STR(BP_ABI_MAJOR) ";ptr" BP_STR(__SIZEOF_POINTER__) ";long" BP_STR(                    \
        __SIZEOF_LONG__) ";int" BP_STR(__SIZEOF_INT__)

#if defined(__GNUC__)
#define BP_EXPORT __attribute__((visibility("default")))
#else
#define BP_EXPORT
#endif

typedef struct bp_host bp_host;
typedef struct bp_registry bp_registry;

/*
 * The descriptor. Fields up to and including `fini` are frozen forever: their order, types and
 * offsets never change, whatever the ABI version. New fields are only ever appended, and the
 * loader reads only the fields covered by `struct_size`.
 */
typedef struct bp_plugin {
    uint32_t magic;          /* BP_PLUGIN_MAGIC */
    uint16_t abi_major;      /* BP_ABI_MAJOR the plugin was built against */
    uint16_t abi_minor;      /* BP_ABI_MINOR the plugin was built against */
    uint32_t struct_size;    /* sizeof(bp_plugin) at build time */
    uint32_t reserved0;      /* zero */
    const char *build_sig;   /* BP_BUILD_SIG at build time */
    const char *name;        /* unique plugin name, [a-z0-9_]+ */
    const char *version;     /* the plugin's own version, free text ("1.2.0") */
    const char *description; /* one line */
    /*
     * init - register capabilities and build the plugin's private state.
     *   host:      the service table for this plugin; valid until fini returns.
     *   reg:       the registry; valid only during this call.
     *   out_state: receives the plugin state, later handed back to every callback and to fini.
     *   err:       fill it on failure.
     * Returns BP_OK, or a negative status: the loader then rolls back the registrations.
     */
    int (*init)(const bp_host *host, bp_registry *reg, void **out_state, bp_error *err);
    /* fini - release the state. Called once, at shutdown, after every instance is destroyed. */
    void (*fini)(void *state);
} bp_plugin;

_Static_assert(offsetof(bp_plugin, magic) == 0, "bp_plugin.magic is frozen");
_Static_assert(offsetof(bp_plugin, abi_major) == 4, "bp_plugin.abi_major is frozen");
_Static_assert(offsetof(bp_plugin, abi_minor) == 6, "bp_plugin.abi_minor is frozen");
_Static_assert(offsetof(bp_plugin, struct_size) == 8, "bp_plugin.struct_size is frozen");
_Static_assert(offsetof(bp_plugin, build_sig) == 16, "bp_plugin.build_sig is frozen");
_Static_assert(offsetof(bp_plugin, name) == 16 + sizeof(void *), "bp_plugin.name is frozen");
_Static_assert(offsetof(bp_plugin, init) == 16 + 4 * sizeof(void *), "bp_plugin.init is frozen");

#define BP_PLUGIN_ENTRY_SYMBOL "bp_plugin_entry"

typedef const bp_plugin *(*bp_plugin_entry_fn)(void);

/*
 * BP_PLUGIN_DEFINE(name, version, description, init_fn, fini_fn) defines the descriptor and the
 * exported entry point. Write it once, at the bottom of the plugin's .c file.
 */
#define BP_PLUGIN_DEFINE(pname, pversion, pdescription, pinit, pfini)                              \
    static const bp_plugin bp_plugin_descriptor_ = {                                               \
        .magic = BP_PLUGIN_MAGIC,                                                                  \
        .abi_major = BP_ABI_MAJOR,                                                                 \
        .abi_minor = BP_ABI_MINOR,                                                                 \
        .struct_size = (uint32_t)sizeof(bp_plugin),                                                \
        .reserved0 = 0,                                                                            \
        .build_sig = BP_BUILD_SIG,                                                                 \
        .name = (pname),                                                                           \
        .version = (pversion),                                                                     \
        .description = (pdescription),                                                             \
        .init = (pinit),                                                                           \
        .fini = (pfini),                                                                           \
    };                                                                                             \
    BP_EXPORT const bp_plugin *bp_plugin_entry(void);                                              \
    BP_EXPORT const bp_plugin *bp_plugin_entry(void)                                               \
    {                                                                                              \
        return &bp_plugin_descriptor_;                                                             \
    }

#endif
