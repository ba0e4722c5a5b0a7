// Load generator for `unirt serve` (bench/bench_serve.py drives it): N connections, each sending
// KServe v2 binary-tensor infer requests back to back (a closed loop), for a number of requests or
// seconds. Prints one JSON line: requests by status, throughput, latency percentiles. A C++
// client, so that the client is not what limits the server at high concurrency.
//   unirt_bench_serve HOST:PORT MODEL INPUT DIMS CONCURRENCY REQUESTS [SECONDS]
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: %s HOST:PORT MODEL INPUT DIMS(e.g. 1x3x224x224) CONCURRENCY REQUESTS [SECONDS]\n", argv[0]);
    return 2;
  }
  const std::string hostport = argv[1], model = argv[2], input = argv[3], dims_s = argv[4];
  const int conc = std::stoi(argv[5]);
  const long total = std::stol(argv[6]);
  const double seconds = argc > 7 ? std::stod(argv[7]) : 0;
  const auto colon = hostport.rfind(':');
  const std::string host = hostport.substr(0, colon);
  const int port = std::stoi(hostport.substr(colon + 1));
  std::vector<long> dims;
  {
    std::stringstream ss(dims_s);
    for (std::string t; std::getline(ss, t, 'x');) dims.push_back(std::stol(t));
  }
  long n = 1;
  for (long d : dims) n *= d;
  std::vector<float> data(static_cast<size_t>(n));
  std::mt19937 rng(0);
  std::normal_distribution<float> nd;
  for (auto& v : data) v = nd(rng);
  std::string shape = "[";
  for (size_t i = 0; i < dims.size(); ++i) shape += (i ? "," : "") + std::to_string(dims[i]);
  shape += "]";
  const std::string header = "{\"inputs\":[{\"name\":\"" + input + "\",\"shape\":" + shape +
                             ",\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":" + std::to_string(n * 4) +
                             "}}],\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"binary_data\":true}}]}";
  std::string body = header;
  body.append(reinterpret_cast<const char*>(data.data()), data.size() * 4);
  const std::string path = "/v2/models/" + model + "/infer";

  std::atomic<long> issued{0};
  std::mutex mu;
  std::vector<double> lat;
  std::map<int, long> by_status;
  const auto t0 = std::chrono::steady_clock::now();
  const auto stop_at = t0 + std::chrono::duration<double>(seconds > 0 ? seconds : 1e9);
  std::vector<std::thread> threads;
  for (int c = 0; c < conc; ++c)
    threads.emplace_back([&] {
      httplib::Client cli(host, port);
      cli.set_keep_alive(true);
      cli.set_tcp_nodelay(true);
      cli.set_read_timeout(120, 0);
      cli.set_write_timeout(120, 0);
      httplib::Headers h{{"Inference-Header-Content-Length", std::to_string(header.size())}};
      std::vector<double> mine;
      std::map<int, long> st;
      while (issued.fetch_add(1) < total && std::chrono::steady_clock::now() < stop_at) {
        const auto a = std::chrono::steady_clock::now();
        auto res = cli.Post(path.c_str(), h, body, "application/octet-stream");
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
        const int code = res ? res->status : -1;  // -1: no response (connection error)
        ++st[code];
        if (code == 200) mine.push_back(ms);
      }
      std::lock_guard<std::mutex> lock(mu);
      lat.insert(lat.end(), mine.begin(), mine.end());
      for (auto& kv : st) by_status[kv.first] += kv.second;
    });
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, static_cast<size_t>(p / 100 * lat.size()))]; };
  std::printf("{\"concurrency\":%d,\"seconds\":%.3f,\"ok\":%zu,\"throughput_rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"status\":{", conc, wall,
              lat.size(), lat.size() / wall, pct(50), pct(99));
  bool first = true;
  for (auto& kv : by_status) std::printf("%s\"%d\":%ld", first ? "" : ",", kv.first, kv.second), first = false;
  std::printf("}}\n");
  return 0;
}
