// The reconcile loop's pieces, one header each: the backends it goes through, resolving endpoint
// names, reading the live state, executing a plan. engine.hpp runs them in order.
#pragma once

#include "apply/backends.hpp"
#include "apply/execute.hpp"
#include "apply/read_live.hpp"
#include "apply/resolve.hpp"
