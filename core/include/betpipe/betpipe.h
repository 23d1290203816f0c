/*
 * betpipe/betpipe.h - everything a plugin may include, in one header.
 */
#ifndef BETPIPE_BETPIPE_H
#define BETPIPE_BETPIPE_H

#include "betpipe/cache.h"
#include "betpipe/host.h"
#include "betpipe/http.h"
#include "betpipe/job.h"
#include "betpipe/log.h"
#include "betpipe/plugin.h"
#include "betpipe/registry.h"
#include "betpipe/status.h"
#include "betpipe/store.h"

#endif
