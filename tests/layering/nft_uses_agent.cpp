// Must NOT compile: the nftables adapter reaching into the agent. tests/CMakeLists.txt builds it and
// expects the compiler to say the header is not there (see "Layering" in CONTRIBUTING.md).
#include "nft/writer.hpp"
#include "agent/agent.hpp"
