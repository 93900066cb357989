// topowall: the operator CLI. Exit codes: 0 ok, 1 the agent refused or failed,
// 2 usage error, 3 the agent is unreachable. The commands are in the cli library (app.cpp, cmd_*.cpp).
#include <exception>
#include <iostream>

#include "app.hpp"

int main(int argc, char** argv) {
  topowall::cli::Ctx ctx;
  auto app = topowall::cli::build_app(ctx);
  try {
    app->parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app->exit(e);
    return code == 0 ? 0 : 2;
  } catch (const std::exception& e) {  // e.g. an agent of another version answering with other fields
    std::cerr << "topowall: unexpected answer from the agent (" << e.what()
              << "); are topowalld and topowall the same version? `topowall -o json ...` shows the raw answer\n";
    return 1;
  }
  return ctx.rc;
}
