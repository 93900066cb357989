// A proxy in front of a service the agent depends on (the runtime API on a unix socket, etcd on TCP),
// playing that service's faults for the reliability tests: down, stalled, slow, and back.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

namespace topowall::testing {

class FaultProxy {
 public:
  enum class Mode {
    pass,   // bytes flow both ways
    down,   // nothing listens (connect is refused) and every open connection is cut
    stall,  // connections are accepted, nothing is forwarded either way (a hung service, a black hole)
  };
  // `listen` and `target` are "unix:/path" or "tcp:127.0.0.1:port" (loopback only).
  FaultProxy(std::string listen, std::string target);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  bool ok() const { return ok_; }
  void set(Mode m);
  // Slow: what the service sends is held this long before it is passed on (0: not at all). Bytes read
  // while it is set keep their delay after it is cleared, as a slow service's late answers would.
  void set_answer_delay(std::chrono::milliseconds d);
  int accepted() const { return accepted_; }

 private:
  void run();

  std::string listen_, target_;
  std::atomic<Mode> mode_{Mode::pass};
  std::atomic<long long> delay_ms_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  bool ok_ = false;
  int listen_fd_ = -1;  // the proxy's thread's, once constructed
  std::thread thread_;
};

}  // namespace topowall::testing
