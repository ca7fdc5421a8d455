#include "tests/xen/xen_test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "dirtylog/xen/stream/le.h"
#include "dirtylog/xen/stream/records.h"

namespace xm::xen::testing {

std::vector<std::byte> MakePages(size_t count, uint64_t seed, size_t zero_every) {
  std::vector<std::byte> out(count * kXenPageSize);
  std::mt19937_64 rng(seed);
  for (size_t p = 0; p < count; ++p) {
    if (zero_every && p % zero_every == zero_every - 1) continue;
    for (size_t i = 0; i < kXenPageSize; i += 8) {
      uint64_t v = rng();
      std::memcpy(out.data() + p * kXenPageSize + i, &v, 8);
    }
  }
  return out;
}

std::vector<const std::byte*> PagePointers(const std::vector<std::byte>& pages, std::vector<uint64_t> indexes) {
  std::vector<const std::byte*> out;
  for (uint64_t i : indexes) out.push_back(pages.data() + i * kXenPageSize);
  return out;
}

XenGuestState FixtureGuestState(uint32_t vcpus, uint32_t salt) {
  XenGuestState st;
  st.tsc = TscInfo{0, 2400000 + salt, 123456789ull * (salt + 1), 1 + salt};
  // Typical non-zero params of an HVM guest: xenstore and console rings, identity page table, ioreq server pages.
  st.params = {{kHvmParamStorePfn, 0xfeffc + salt}, {kHvmParamConsolePfn, 0xfefff}, {12, 0xfeffd000}, {32, 0xfeff0},
               {33, 8}};
  std::vector<uint8_t>& c = st.hvm_context;
  auto desc = [&](uint16_t t, uint16_t inst, uint32_t len) {
    PutLe16(c, t);
    PutLe16(c, inst);
    PutLe32(c, len);
  };
  desc(kHvmSaveHeader, 0, kHvmSaveHeaderSize);
  PutLe32(c, kHvmFileMagic);
  PutLe32(c, kHvmFileVersion);
  PutLe64(c, 0x0000000412345678ull + salt);  // changeset
  PutLe32(c, 0x000906ea);                     // cpuid leaf 1 eax
  PutLe32(c, 2400000 + salt);
  for (uint32_t v = 0; v < vcpus; ++v) {
    desc(kHvmSaveCpu, static_cast<uint16_t>(v), kHvmHwCpuSize);
    for (uint32_t i = 0; i < kHvmHwCpuSize; ++i) c.push_back(static_cast<uint8_t>(i * 7 + v + salt));
  }
  for (uint32_t v = 0; v < vcpus; ++v) {
    desc(5, static_cast<uint16_t>(v), 48);  // LAPIC
    for (int i = 0; i < 48; ++i) c.push_back(static_cast<uint8_t>(v + i));
  }
  desc(14, 0, 3);  // an odd length, as some device records have
  c.insert(c.end(), {1, 2, 3});
  desc(kHvmSaveEnd, 0, 0);
  st.emulator_context.push_back({static_cast<uint32_t>(EmulatorId::kQemuUpstream), 0, std::vector<uint8_t>(1001, 0x5a)});
  return st;
}

XenCpuPolicy FixturePolicy() {
  std::vector<uint32_t> fs(19, 0);
  fs[0] = 0x178bfbff;  // 1d
  fs[1] = 0xf6d8320b;  // 1c
  fs[2] = 0x2fd3fbff;  // e1d
  fs[3] = 0x004003f3;  // e1c
  fs[5] = 0x219c91a9;  // 7b0
  fs[16] = 0x0000002b; // ARCH_CAPS low
  XenCpuPolicy p = SynthesisePolicy("AuthenticAMD", fs);
  p.synthetic = false;  // stands in for one read from Xen
  return p;
}

std::optional<Verifier> FindVerifier(std::string* why) {
  // The environment wins; the build's own source dir is the fallback (ctest's
  // ENVIRONMENT list does not always carry XMOTION_SOURCE_DIR through).
  const char* src = std::getenv("XMOTION_SOURCE_DIR");
  std::string root = src ? src : XM_SOURCE_DIR;
  std::string base = root + "/.cache/xen-utils/usr/lib/xen-4.17";
  Verifier v{base + "/bin/verify-stream-v2", base + "/lib/python"};
  if (!std::filesystem::exists(v.script)) {
    *why = v.script + " is missing";
    return std::nullopt;
  }
  if (!std::filesystem::exists(v.pythonpath + "/xen/migration/libxc.py")) {
    *why = v.pythonpath + "/xen/migration is missing";
    return std::nullopt;
  }
  if (std::system("python3 -c 'import sys' >/dev/null 2>&1") != 0) {
    *why = "python3 is not installed";
    return std::nullopt;
  }
  return v;
}

std::string TempPath(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("xmotion-xen-" + std::to_string(::getpid()) + "-" + name);
}

VerifyResult RunVerifier(const Verifier& v, const std::vector<uint8_t>& bytes, const std::string& format) {
  static int seq = 0;
  std::string in = TempPath("stream-" + std::to_string(seq++));
  {
    std::ofstream f(in, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  std::string cmd = "PYTHONPATH='" + v.pythonpath + "' python3 '" + v.script + "' -f " + format + " -i '" + in + "' 2>&1";
  VerifyResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::filesystem::remove(in);
  return r;
}

}  // namespace xm::xen::testing
