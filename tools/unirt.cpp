// unirt: build, run, bench, compare, inspect, classify and detect with UniFormer engines (trtexec/polygraphy style).
// Errors print "unirt: error: <message>" and exit 1; command-line usage errors exit 2.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli.h"

using namespace unirt;

namespace {

// Messages quote names and header text from the user's files: bytes that are not printable ASCII
// are shown as \xNN so a damaged file cannot put control characters or invalid UTF-8 on the terminal.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if ((ch >= 0x20 && ch < 0x7f) || ch == '\n' || ch == '\t') {
      out += static_cast<char>(ch);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"unirt: UniFormer inference engine (ONNX -> engine -> CPU/CUDA)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    std::string why;
    const bool cuda = cuda_backend_available(&why);
    return std::string("unirt ") + kUnirtVersion + " (engine format " + std::to_string(kEngineFormatVersion) +
           "; cpu: available; cuda: " + (cuda ? "available" : "unavailable: " + why) + ")";
  });
  // Limits on what a model, engine or input may ask for, checked before allocating.
  int64_t max_tensor_bytes = resource_limits().max_tensor_bytes;
  if (const char* env = std::getenv("UNIRT_MAX_TENSOR_BYTES")) {
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    if (!end || *end || v <= 0) {
      std::cerr << "unirt: error: UNIRT_MAX_TENSOR_BYTES='" << env << "' is not a positive byte count\n";
      return 2;
    }
    max_tensor_bytes = v;
  }
  app.add_option("--max-tensor-bytes", max_tensor_bytes, "largest tensor a model, engine or input may need (default 64 GiB)")
      ->check(CLI::PositiveNumber);
  cli::Registry reg;
  reg.argv0 = argv[0];
  cli::add_build_command(app, reg);
  cli::add_run_command(app, reg);
  cli::add_bench_command(app, reg);
  cli::add_compare_command(app, reg);
  cli::add_inspect_command(app, reg);
  cli::add_classify_command(app, reg);
  cli::add_detect_command(app, reg);
  cli::add_calibrate_command(app, reg);
  cli::add_debug_command(app, reg);
  cli::add_ops_command(app, reg);
  cli::add_serve_command(app, reg);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  resource_limits().max_tensor_bytes = max_tensor_bytes;
  try {
    for (const CLI::App* sub : app.get_subcommands()) {
      while (!sub->get_subcommands().empty()) sub = sub->get_subcommands().front();  // `debug precision`
      return reg.actions.at(sub)();
    }
  } catch (const Error& ex) {
    std::cerr << "unirt: error: " << printable(ex.what()) << "\n";
    return 1;
  } catch (const std::exception& ex) {
    std::cerr << "unirt: error: " << printable(ex.what()) << "\n";
    return 1;
  }
  return 0;
}
