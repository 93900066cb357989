// Without libFuzzer (gcc, or the sanitizer build of the test suite): every file of the given corpus
// directories (or the given files) goes through LLVMFuzzerTestOneInput once, so CI replays the seeds
// and the regression inputs under ASan + UBSan. A crash is the test's failure.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {
int replay(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", file.c_str());
    return 1;
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // A copy of exactly the input's size: a read past its end is a heap overflow ASan reports.
  std::vector<std::uint8_t> exact(bytes.begin(), bytes.end());
  LLVMFuzzerTestOneInput(exact.data(), exact.size());
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 0;
  int failed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) failed += replay(f), ++n;
    } else {
      failed += replay(p);
      ++n;
    }
  }
  if (n == 0) {
    std::fprintf(stderr, "no corpus files given: a replay that runs nothing proves nothing\n");
    return 1;
  }
  std::printf("%zu inputs replayed\n", n);
  return failed ? 1 : 0;
}
