#include "store/state_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/fd.hpp"
#include "topowall/topology/json_limits.hpp"

namespace topowall::store {

namespace {
Error sys_error(const std::string& what) { return Error{what + ": " + std::strerror(errno), errno}; }
}  // namespace

FileStateStore::FileStateStore(std::string dir) : dir_(std::move(dir)) {}

Status FileStateStore::prepare() {
  if (mkdir(dir_.c_str(), 0700) < 0 && errno != EEXIST)
    return sys_error("create state directory " + dir_ + " (choose a writable --state-dir)");
  struct stat st{};
  if (stat(dir_.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
    return Error{"state directory " + dir_ + " is not a directory"};
  return ok_status();
}

Result<std::optional<nlohmann::json>> FileStateStore::load() {
  std::ifstream in(path());
  if (!in) {
    if (errno == ENOENT) return std::optional<nlohmann::json>{};
    return sys_error("read " + path());
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = topology::parse_json(ss.str());
  if (!j) return Error{path() + " is " + j.error().message + "; move it aside to start fresh, or restore a backup"};
  return std::optional<nlohmann::json>(std::move(*j));
}

Status StateStore::save_text(const std::string& text) {
  auto doc = topology::parse_json(text);
  if (!doc) return Error{"the state to save is " + doc.error().message};
  return save(*doc);
}

Status FileStateStore::save(const nlohmann::json& doc) { return save_text(doc.dump(1) + "\n"); }

Status FileStateStore::save_text(const std::string& text) {
  const std::string tmp = path() + ".tmp";
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return sys_error("write " + tmp);
    std::size_t off = 0;
    while (off < text.size()) {
      ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        return sys_error("write " + tmp);
      }
      off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) < 0) return sys_error("fsync " + tmp);
  }
  if (::rename(tmp.c_str(), path().c_str()) < 0) return sys_error("rename " + tmp);
  // The rename itself must survive a crash: sync the directory entry.
  UniqueFd dfd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd) ::fsync(dfd.get());
  return ok_status();
}

}  // namespace topowall::store
