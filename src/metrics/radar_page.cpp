#include "metrics/radar_page.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <stdexcept>

#include "topowall/topology/radar.hpp"

namespace topowall::metrics {

namespace assets {
extern const unsigned char k_html[], k_js[], k_css[];
extern const std::size_t k_html_size, k_js_size, k_css_size;
}  // namespace assets

namespace {

std::string_view view(const unsigned char* p, std::size_t n) { return {reinterpret_cast<const char*>(p), n}; }
std::string_view radar_html() { return view(assets::k_html, assets::k_html_size); }

// The template marks where the head's style and the body's scripts go.
constexpr std::string_view kHeadMark = "<!--radar:head-->";
constexpr std::string_view kScriptMark = "<!--radar:script-->";

std::string fill(std::string_view head, std::string_view script) {
  std::string page(radar_html());
  auto h = page.find(kHeadMark);
  if (h == std::string::npos) throw std::logic_error("radar.html lacks " + std::string(kHeadMark));
  page.replace(h, kHeadMark.size(), head);
  auto s = page.find(kScriptMark);
  if (s == std::string::npos) throw std::logic_error("radar.html lacks " + std::string(kScriptMark));
  page.replace(s, kScriptMark.size(), script);
  return page;
}

}  // namespace

std::string_view radar_js() { return view(assets::k_js, assets::k_js_size); }
std::string_view radar_css() { return view(assets::k_css, assets::k_css_size); }

std::string csp_hash(std::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  unsigned char b64[4 * ((SHA256_DIGEST_LENGTH + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(b64, digest, SHA256_DIGEST_LENGTH);
  return "sha256-" + std::string(reinterpret_cast<const char*>(b64), static_cast<std::size_t>(n));
}

std::string radar_served_page() {
  return fill("<link rel=\"stylesheet\" href=\"/radar.css\">", "<script src=\"/radar.js\"></script>");
}

std::string radar_exported_page(const nlohmann::json& model) {
  const std::string csp = "default-src 'none'; script-src '" + csp_hash(radar_js()) + "'; style-src '" +
                          csp_hash(radar_css()) + "'; img-src data:; base-uri 'none'; form-action 'none'";
  std::string head = "<meta http-equiv=\"Content-Security-Policy\" content=\"" + csp + "\">\n<style>";
  head += radar_css();
  head += "</style>";
  // The model is data, never run: a JSON script element, with '<' escaped so it cannot close itself.
  std::string script = "<script type=\"application/json\" id=\"radar-data\">" + topology::json_for_html(model) +
                       "</script>\n<script>";
  script += radar_js();
  script += "</script>";
  return fill(head, script);
}

}  // namespace topowall::metrics
