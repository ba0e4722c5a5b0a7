// unirt: build, run, bench, compare, inspect and classify UniFormer engines (trtexec/polygraphy style).
// Errors print "unirt: error: <message>" and exit 1; command-line usage errors exit 2.
#include <iostream>

#include "cli.h"

using namespace unirt;

int main(int argc, char** argv) {
  CLI::App app{"unirt: UniFormer inference engine (ONNX -> engine -> CPU/CUDA)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    std::string why;
    const bool cuda = cuda_backend_available(&why);
    return std::string("unirt ") + kUnirtVersion + " (engine format " + std::to_string(kEngineFormatVersion) +
           "; cpu: available; cuda: " + (cuda ? "available" : "unavailable: " + why) + ")";
  });
  cli::Registry reg;
  reg.argv0 = argv[0];
  cli::add_build_command(app, reg);
  cli::add_run_command(app, reg);
  cli::add_bench_command(app, reg);
  cli::add_compare_command(app, reg);
  cli::add_inspect_command(app, reg);
  cli::add_classify_command(app, reg);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    for (const CLI::App* sub : app.get_subcommands()) return reg.actions.at(sub)();
  } catch (const Error& ex) {
    std::cerr << "unirt: error: " << ex.what() << "\n";
    return 1;
  } catch (const std::exception& ex) {
    std::cerr << "unirt: error: " << ex.what() << "\n";
    return 1;
  }
  return 0;
}
