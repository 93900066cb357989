// Must compile: the control for nft_uses_agent.cpp (the adapter's own headers, the core's, common's).
#include "common/handles.hpp"
#include "nft/writer.hpp"
#include "topowall/topology/ruleset.hpp"
