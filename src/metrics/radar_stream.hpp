// The radar's live stream (Server-Sent Events on /radar/events): each client gets the whole model at
// once, then again whenever it changed. The model is built only while someone watches, at most every
// `interval` (stretched when building it is slow, so a huge graph cannot eat the agent's loop).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace topowall::metrics {

struct RadarStreamStats {
  std::uint64_t clients_refused = 0;  // over the client limit
  std::uint64_t updates = 0;          // model events sent (all clients)
  std::uint64_t coalesced = 0;        // updates a slow client skipped (it gets the newest)
  std::uint64_t errors = 0;           // building the model threw
};

class RadarStream {
 public:
  RadarStream(boost::asio::io_context& io, std::function<nlohmann::json()> model,
              std::chrono::milliseconds interval = std::chrono::milliseconds(500), std::size_t max_clients = 8);
  ~RadarStream();
  // Takes the connection of a GET /radar/events: writes the response head and the current model.
  void add(boost::asio::ip::tcp::socket sock);
  void stop();
  std::size_t clients() const { return clients_.size(); }
  const RadarStreamStats& stats() const { return stats_; }

 private:
  struct Client {
    boost::asio::ip::tcp::socket sock;
    std::string writing, next;  // the event on the wire; the newest one waiting behind it
    bool dead = false;
  };
  void arm();
  void tick();
  [[nodiscard]] bool build(std::string& event);  // false: the model could not be built
  void send(Client& c, std::string data);
  void write(Client& c);

  boost::asio::io_context& io_;
  std::function<nlohmann::json()> model_;
  std::chrono::milliseconds interval_, wait_;
  std::size_t max_clients_;
  boost::asio::steady_timer timer_;
  bool armed_ = false;
  std::list<Client> clients_;  // stable addresses: writes in flight refer to their client
  std::size_t last_hash_ = 0;
  std::chrono::steady_clock::time_point last_sent_{};
  RadarStreamStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace topowall::metrics
