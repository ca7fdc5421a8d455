#include "cpumask/policy_text.h"

#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cpumask/feature_table.h"
#include "cpumask/vendor.h"

namespace xm::cpumask {
namespace {

// Same bound as the CPU_POLICY wire record: anything longer is not a featureset.
constexpr size_t kMaxWords = 256;
constexpr size_t kMaxFileBytes = 1 << 20;

Status Bad(std::string msg) { return Error(Code::kInvalidArgument, std::move(msg)); }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool AllHex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

bool IsHex8(std::string_view s) { return s.size() == 8 && AllHex(s); }

uint32_t HexValue(std::string_view s) {
  uint32_t v = 0;
  for (char c : s) {
    int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
    v = v * 16 + static_cast<uint32_t>(d);
  }
  return v;
}

std::string Quote(std::string_view s) {
  constexpr size_t kShown = 40;
  if (s.size() > kShown) return "'" + std::string(s.substr(0, kShown)) + "...'";
  return "'" + std::string(s) + "'";
}

Result<FeatureWords> ParseHexWords(std::string_view body) {
  bool colon = body.find(':') != std::string_view::npos;
  bool dash = body.find('-') != std::string_view::npos;
  if (colon && dash) return Bad("featureset mixes ':' (Xen) and '-' (XAPI) between words");
  char sep = colon ? ':' : '-';
  FeatureWords words;
  size_t index = 0;
  while (true) {
    size_t end = body.find(sep);
    std::string_view tok = body.substr(0, end);
    if (index >= kMaxWords) return Bad("featureset has more than " + std::to_string(kMaxWords) + " words");
    if (tok.empty()) return Bad("featureset word " + std::to_string(index) + " is empty");
    if (!IsHex8(tok))
      return Bad("featureset word " + std::to_string(index) + " " + Quote(tok) + " is not 8 hex digits");
    words.push_back(HexValue(tok));
    ++index;
    if (end == std::string_view::npos) break;
    body.remove_prefix(end + 1);
  }
  return words;
}

// "word5.bit22": the printed name of a bit the header does not name.
bool ParseRawBitName(std::string_view tok, uint32_t& bit) {
  unsigned word = 0, b = 0;
  char tail = 0;
  std::string s(tok);
  if (std::sscanf(s.c_str(), "word%u.bit%u%c", &word, &b, &tail) != 2) return false;
  if (word >= kMaxWords || b >= 32) return false;
  bit = word * 32 + b;
  return true;
}

Result<FeatureWords> ParseNames(std::string_view body) {
  FeatureWords words(WordCount(), 0);
  size_t i = 0;
  while (i < body.size()) {
    char c = body[i];
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < body.size() && body[j] != ',' && !std::isspace(static_cast<unsigned char>(body[j]))) ++j;
    std::string_view tok = body.substr(i, j - i);
    i = j;
    uint32_t bit = 0;
    if (const FeatureInfo* f = FindFeature(tok)) {
      bit = f->bit;
    } else if (!ParseRawBitName(tok, bit)) {
      if (AllHex(tok))
        return Bad("featureset " + Quote(tok) + " is neither a feature name nor a list of 8-hex-digit words");
      return Bad("unknown CPU feature " + Quote(tok) + " (names are Xen's, e.g. avx2, avx512f, avx512_vnni)");
    }
    SetBit(words, bit);
  }
  return words;
}

// The vendor in front of the first ':' unless that token is already a hex word.
Status SplitVendor(std::string_view text, std::string& vendor, std::string_view& body) {
  vendor.clear();
  body = text;
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) return {};
  std::string_view first = text.substr(0, colon);
  if (IsHex8(first)) return {};
  if (auto v = CanonicalVendor(Trim(first))) {
    vendor = *v;
  } else if (first.size() == 12 && first.find_first_of(",\n\t") == std::string_view::npos) {
    vendor = std::string(first);  // a vendor we have no short name for; kept verbatim
  } else {
    return Bad("unknown CPU vendor " + Quote(first) + ": expected " + KnownVendorNames());
  }
  body = Trim(text.substr(colon + 1));
  if (body.empty()) return Bad("no featureset after vendor " + Quote(first));
  return {};
}

Result<CpuPolicy> ParseText(std::string_view text) {
  if (text.empty()) return Bad("empty CPU policy");
  if (text.front() == '{') {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Bad("CPU policy starts with '{' but is not valid JSON");
    return PolicyFromJson(j);
  }
  CpuPolicy p;
  p.format = "none";
  std::string_view body;
  XM_TRY(SplitVendor(text, p.vendor, body));
  bool has_list_chars = body.find_first_of(", \t\n") != std::string_view::npos;
  size_t first_end = body.find_first_of(":-");
  bool words_form = !has_list_chars && (IsHex8(body) || (first_end != std::string_view::npos &&
                                                          AllHex(body.substr(0, first_end))));
  if (words_form) {
    XM_ASSIGN_OR_RETURN(p.featureset, ParseHexWords(body));
  } else {
    XM_ASSIGN_OR_RETURN(p.featureset, ParseNames(body));
  }
  return p;
}

Result<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Bad("cannot open CPU policy file '" + path + "'");
  std::string data;
  data.resize(kMaxFileBytes + 1);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  data.resize(static_cast<size_t>(in.gcount()));
  if (in.bad()) return Bad("cannot read CPU policy file '" + path + "'");
  if (data.size() > kMaxFileBytes) return Bad("CPU policy file '" + path + "' is larger than 1 MiB");
  return data;
}

// Files may carry '#' comment lines (what host a featureset came from).
std::string StripCommentLines(const std::string& data) {
  std::string out;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos) end = data.size();
    std::string_view line(data.data() + pos, end - pos);
    if (Trim(line).empty() || Trim(line).front() != '#') {
      out.append(line);
      out.push_back('\n');
    }
    pos = end + 1;
  }
  return out;
}

Result<CpuPolicy> ParseFile(const std::string& path) {
  XM_ASSIGN_OR_RETURN(std::string data, ReadSmallFile(path));
  return ParseText(Trim(StripCommentLines(data))).With("file '" + path + "'");
}

bool IsRegularFile(std::string_view path) {
  struct stat st {};
  return !path.empty() && ::stat(std::string(path).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

Result<CpuPolicy> ParsePolicy(std::string_view text) {
  text = Trim(text);
  if (!text.empty() && text.front() == '@') return ParseFile(std::string(Trim(text.substr(1))));
  auto parsed = ParseText(text);
  if (parsed.ok() || text.find('\n') != std::string_view::npos) return parsed;
  if (IsRegularFile(text)) return ParseFile(std::string(text));
  // A lone token that looks like a path but is neither a policy nor a file.
  bool one_token = text.find_first_of(",: \t") == std::string_view::npos;
  if (one_token && text.find('/') != std::string_view::npos)
    return Bad("no such CPU policy file '" + std::string(text) + "'");
  if (one_token && text.find('.') != std::string_view::npos)
    return Bad(parsed.status().message() + "; no file named '" + std::string(text) + "' either");
  return parsed;
}

Result<CpuPolicy> PolicyFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Bad("CPU policy JSON must be an object");
  CpuPolicy p;
  p.format = "none";
  if (auto it = j.find("vendor"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return Bad("CPU policy JSON: \"vendor\" must be a string");
    std::string v = it->get<std::string>();
    if (!v.empty()) {
      if (auto c = CanonicalVendor(Trim(v))) {
        p.vendor = *c;
      } else if (v.size() == 12) {
        p.vendor = v;
      } else {
        return Bad("CPU policy JSON: unknown vendor " + Quote(v) + ": expected " + KnownVendorNames());
      }
    }
  }
  auto fs = j.find("featureset");
  auto names = j.find("features");
  if (fs == j.end() && names == j.end())
    return Bad("CPU policy JSON needs \"featureset\" (hex words) or \"features\" (names)");
  if (fs != j.end()) {
    if (fs->is_string()) {
      std::string s = fs->get<std::string>();
      if (!Trim(s).empty()) {  // "" is how an empty featureset prints
        XM_ASSIGN_OR_RETURN(p.featureset, ParseHexWords(Trim(s)));
      }
    } else if (fs->is_array()) {
      if (fs->size() > kMaxWords) return Bad("CPU policy JSON: featureset has more than 256 words");
      for (size_t i = 0; i < fs->size(); ++i) {
        const auto& w = (*fs)[i];
        if (!w.is_number_unsigned() || w.get<uint64_t>() > 0xffffffffu)
          return Bad("CPU policy JSON: featureset word " + std::to_string(i) + " " + Quote(w.dump()) +
                     " is not a 32-bit unsigned number");
        p.featureset.push_back(w.get<uint32_t>());
      }
    } else {
      return Bad("CPU policy JSON: \"featureset\" must be a string of hex words or an array of numbers");
    }
  }
  if (names != j.end()) {
    if (!names->is_array()) return Bad("CPU policy JSON: \"features\" must be an array of names");
    std::string joined;
    for (const auto& n : *names) {
      if (!n.is_string()) return Bad("CPU policy JSON: feature " + Quote(n.dump()) + " is not a string");
      joined += n.get<std::string>() + ",";
    }
    XM_ASSIGN_OR_RETURN(FeatureWords from_names, ParseNames(joined));
    if (fs == j.end()) {
      p.featureset = std::move(from_names);
    } else {
      // Both given: they must describe the same set, or one of them is stale.
      auto only_names = Missing(from_names, p.featureset);
      auto only_words = Missing(p.featureset, from_names);
      // Missing() skips environment bits; compare them explicitly too.
      bool env_differs = false;
      for (size_t w = 0; w < std::max(from_names.size(), p.featureset.size()); ++w) {
        uint32_t a = w < from_names.size() ? from_names[w] : 0;
        uint32_t b = w < p.featureset.size() ? p.featureset[w] : 0;
        if ((a ^ b) & EnvironmentMask(static_cast<uint32_t>(w))) env_differs = true;
      }
      if (!only_names.empty() || !only_words.empty() || env_differs) {
        std::string msg = "CPU policy JSON: \"featureset\" and \"features\" disagree";
        if (!only_names.empty()) msg += "; only in features: " + JoinNames(only_names);
        if (!only_words.empty()) msg += "; only in featureset: " + JoinNames(only_words);
        if (env_differs) msg += "; they differ in hypervisor/osxsave/ospke";
        return Bad(msg);
      }
    }
  }
  return p;
}

std::string FormatWords(const FeatureWords& words, char sep) {
  std::string out;
  char buf[16];
  for (size_t i = 0; i < words.size(); ++i) {
    if (i) out.push_back(sep);
    std::snprintf(buf, sizeof buf, "%08x", words[i]);
    out += buf;
  }
  return out;
}

std::string FormatPolicy(const CpuPolicy& policy, TextFormat format) {
  std::string prefix = policy.vendor.empty() ? "" : ShortVendor(policy.vendor) + ":";
  switch (format) {
    case TextFormat::kXen: return prefix + FormatWords(policy.featureset, ':');
    case TextFormat::kXapi: return prefix + FormatWords(policy.featureset, '-');
    case TextFormat::kNames: {
      auto bits = SetBits(policy.featureset);
      if (bits.empty()) return prefix + FormatWords(policy.featureset.empty() ? FeatureWords{0} : policy.featureset, ':');
      return prefix + JoinNames(bits, ",");
    }
    case TextFormat::kJson: return PolicyToJson(policy).dump();
  }
  return {};
}

nlohmann::json PolicyToJson(const CpuPolicy& policy) {
  nlohmann::json j;
  j["vendor"] = policy.vendor;
  j["featureset"] = FormatWords(policy.featureset, ':');
  j["features"] = Names(SetBits(policy.featureset));
  return j;
}

}  // namespace xm::cpumask
