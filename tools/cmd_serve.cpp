// unirt serve [--model-repository DIR] [--model NAME[:VERSION]=FILE ...]: the KServe v2 HTTP
// server with dynamic batching (tools/server.h, tools/batcher.h). SIGTERM or SIGINT stops taking
// connections, answers every request already accepted, and exits 0.
#include <cerrno>
#include <csignal>
#include <malloc.h>
#include <cstdio>
#include <thread>
#include <unistd.h>

#include "cli.h"
#include "server.h"

namespace unirt::cli {

namespace {
int g_signal_pipe = -1;
void on_stop_signal(int sig) {
  const char c = static_cast<char>(sig);
  if (write(g_signal_pipe, &c, 1) < 0) {
  }
}
}  // namespace

void add_serve_command(CLI::App& app, Registry& r) {
  struct Opts {
    std::string repository, host = "127.0.0.1", backend = "auto";
    std::vector<std::string> models;
    int port = 8000, http_threads = 256, threads = 0;
    int64_t max_batch = 0, max_queue_delay_us = 1000, timeout_ms = 30000;
    size_t max_queue = 1024, max_request_bytes = size_t{256} << 20;
    bool no_batching = false, no_warmup = false;
  };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand("serve", "serve engines over HTTP: KServe v2 / Triton protocol, dynamic batching, /metrics, a web page");
  c->add_option("--model-repository", o->repository, "folder of NAME/VERSION/*.engine (or NAME/*.engine: version 1)");
  c->add_option("--model", o->models, "NAME[:VERSION]=ENGINE_FILE (repeatable; added to the repository's)");
  c->add_option("--host", o->host, "address to listen on");
  c->add_option("--port", o->port, "port (0: any free one, printed)")->check(CLI::Range(0, 65535));
  c->add_option("--max-batch", o->max_batch, "rows per batch at most (default: each engine profile's largest batch)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  c->add_option("--max-queue-delay-us", o->max_queue_delay_us, "how long a batch waits for more requests")->check(CLI::Range(int64_t{0}, int64_t{10000000}));
  c->add_option("--max-queue", o->max_queue, "requests waiting per model; more are answered 503")->check(CLI::Range(size_t{1}, size_t{1} << 24));
  c->add_option("--timeout-ms", o->timeout_ms, "per request, arrival to answer (504 after)")->check(CLI::Range(int64_t{1}, int64_t{86400000}));
  c->add_option("--max-request-bytes", o->max_request_bytes, "largest request body (413 above)")->check(CLI::Range(size_t{1024}, size_t{1} << 40));
  c->add_option("--http-threads", o->http_threads, "connections served at once")->check(CLI::Range(1, 65536));
  c->add_option("--threads", o->threads, "CPU backend threads per model instance (0: all cores)");
  c->add_flag("--no-dynamic-batching", o->no_batching, "run every request on its own");
  c->add_flag("--no-warmup", o->no_warmup, "skip preparing every batch size (plans, CUDA graphs) before serving");
  r.actions[c] = [o] {
    ServerOptions so;
    so.host = o->host;
    so.port = o->port;
    so.max_request_bytes = o->max_request_bytes;
    so.http_threads = o->http_threads;
    so.threads = o->threads;
    so.batching.max_batch = o->max_batch;
    so.batching.max_queue_delay = std::chrono::microseconds(o->max_queue_delay_us);
    so.batching.max_queue = o->max_queue;
    so.batching.timeout = std::chrono::milliseconds(o->timeout_ms);
    so.batching.dynamic_batching = !o->no_batching;
    so.warmup = !o->no_warmup;
    std::vector<std::pair<std::string, std::pair<std::string, std::string>>> specs;
    if (!o->repository.empty()) specs = scan_model_repository(o->repository);
    for (const std::string& m : o->models) {
      const auto eq = m.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) throw Error("--model '" + m + "': expected NAME[:VERSION]=ENGINE_FILE");
      std::string name = m.substr(0, eq), version = "1";
      if (const auto colon = name.find(':'); colon != std::string::npos) {
        version = name.substr(colon + 1);
        name = name.substr(0, colon);
        if (version.empty() || version.find_first_not_of("0123456789") != std::string::npos)
          throw Error("--model '" + m + "': the version must be a number");
      }
      specs.push_back({name, {version, m.substr(eq + 1)}});
    }
    if (specs.empty()) throw Error("nothing to serve: give --model-repository DIR or --model NAME=ENGINE_FILE");
    // Request bodies and batches are megabytes each: glibc would mmap and munmap every one, and
    // each munmap interrupts every core the server's hundreds of threads run on (TLB shootdowns).
    // Keep them on the heap instead.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    // SIGTERM/SIGINT: the handler only writes a byte to a pipe (threads that OpenBLAS and OpenMP
    // started before main() may be the ones the signal lands on); a thread reading it stops the
    // server.
    int fds[2];
    if (pipe(fds) != 0) throw Error("serve: cannot create the signal pipe");
    g_signal_pipe = fds[1];
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    InferenceServer server(so);
    for (const auto& [name, vf] : specs) {
      server.add_model(name, vf.first, vf.second);
      std::printf("model %s version %s: %s\n", name.c_str(), vf.first.c_str(), vf.second.c_str());
    }
    const int port = server.bind();
    std::printf("serving on http://%s:%d (KServe v2; /metrics; web page at /)\n", o->host.c_str(), port);
    std::fflush(stdout);
    std::thread signals([&] {
      char sig = 0;
      while (read(fds[0], &sig, 1) < 0 && errno == EINTR) {
      }
      if (sig != 0) {
        std::printf("signal %d: draining\n", sig);
        std::fflush(stdout);
      }
      server.stop();
    });
    server.serve();
    // serve() also returns if listening failed: wake the signal thread either way.
    const char none = 0;
    if (write(fds[1], &none, 1) < 0) std::perror("serve: signal pipe");
    signals.join();
    std::printf("stopped: every accepted request answered\n");
    return 0;
  };
}

}  // namespace unirt::cli
