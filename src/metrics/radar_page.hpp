// The radar page (src/metrics/radar/): served by the metrics listener as /radar, /radar.js and
// /radar.css under a strict Content-Security-Policy, or written as one self-contained file.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace topowall::metrics {

std::string_view radar_js();
std::string_view radar_css();

// The policy of every response of the metrics listener: script, style and connections from the
// listener itself only; no inline code, no frames, no forms, no other origin.
inline constexpr std::string_view kRadarCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// The page for the listener: loads /radar.css and /radar.js, reads the model from /radar/events.
std::string radar_served_page();

// One file: the style, the script and `model` inline, allowed by their sha256 hashes in the page's own
// policy (connect-src 'none': it never touches the network).
std::string radar_exported_page(const nlohmann::json& model);

// "sha256-<base64>" of `text`, as a CSP source.
std::string csp_hash(std::string_view text);

}  // namespace topowall::metrics
