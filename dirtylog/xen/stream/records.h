// The numbers of Xen's migration streams, as xmotion writes and reads them.
//
// Three nested framings (see dirtylog/xen/README.md for the layout):
//   xl     "Xen saved domain, xl format" header + domain config, then a libxl stream
//   libxl  docs/specs/libxl-migration-stream.pandoc (revision 2)
//   libxc  docs/specs/libxc-migration-stream.pandoc (v2, v3), carried inside the
//          libxl stream after a LIBXC_CONTEXT record
// Integers are little-endian except the libxc image header and the libxl
// header, which the specs fix as big-endian. Every record is 8-octet aligned.
// Values are from the specs; layouts are written out field by field by
// stream_writer.cc, never by casting structs.
#pragma once

#include <cstdint>
#include <string_view>

namespace xm::xen {

// --- libxc image and domain headers ---
inline constexpr uint64_t kImageMarker = 0xffffffffffffffffull;
inline constexpr uint32_t kImageId = 0x58454e46;  // "XENF"
inline constexpr uint32_t kImageHeaderSize = 24;
inline constexpr uint32_t kDomainHeaderSize = 16;
inline constexpr uint32_t kDomainTypeX86Pv = 1;
inline constexpr uint32_t kDomainTypeX86Hvm = 2;  // HVM and PVH
inline constexpr uint32_t kPageShift = 12;
inline constexpr uint32_t kXenPageSize = 1u << kPageShift;

// --- libxc records ---
enum class LibxcRec : uint32_t {
  kEnd = 0x00,
  kPageData = 0x01,
  kX86PvInfo = 0x02,
  kX86PvP2mFrames = 0x03,
  kX86PvVcpuBasic = 0x04,
  kX86PvVcpuExtended = 0x05,
  kX86PvVcpuXsave = 0x06,
  kSharedInfo = 0x07,
  kX86TscInfo = 0x08,
  kHvmContext = 0x09,
  kHvmParams = 0x0a,
  kToolstack = 0x0b,
  kX86PvVcpuMsrs = 0x0c,
  kVerify = 0x0d,
  kCheckpoint = 0x0e,
  kCheckpointDirtyPfnList = 0x0f,
  kStaticDataEnd = 0x10,
  kX86CpuidPolicy = 0x11,
  kX86MsrPolicy = 0x12,
};
std::string_view LibxcRecName(uint32_t type);

// Xen's restore refuses records longer than this (xg_sr_stream_format.h).
inline constexpr uint32_t kMaxRecordLength = 128u << 20;
// xc_domain_save batches at most this many pfns per PAGE_DATA record; xmotion does the same.
inline constexpr uint32_t kMaxPagesPerRecord = 1024;

// PAGE_DATA pfn words: type in bits 63-60 (XEN_DOMCTL_PFINFO_* >> 28), pfn in bits 51-0.
inline constexpr uint64_t kPfnMask = (uint64_t{1} << 52) - 1;
inline constexpr uint64_t kPfnReservedMask = ((uint64_t{1} << 60) - 1) & ~kPfnMask;
inline constexpr int kPfnTypeShift = 60;
enum class PfnType : uint32_t {
  kNotab = 0x0,  // a normal page: the only type HVM/PVH guests use
  kL1Tab = 0x1, kL2Tab = 0x2, kL3Tab = 0x3, kL4Tab = 0x4,
  kL1TabPin = 0x9, kL2TabPin = 0xa, kL3TabPin = 0xb, kL4TabPin = 0xc,
  kBroken = 0xd,
  kXalloc = 0xe,  // allocate, no data
  kXtab = 0xf,    // invalid (a hole / ballooned out), no data
};
bool PfnTypeKnown(uint32_t type);
bool PfnTypeHasData(uint32_t type);

// X86_TSC_INFO body: mode u32, khz u32, nsec u64, incarnation u32, reserved u32.
inline constexpr uint32_t kTscInfoSize = 24;
// Element sizes of the policy arrays (xen_cpuid_leaf_t, xen_msr_entry_t).
inline constexpr uint32_t kCpuidLeafSize = 24;
inline constexpr uint32_t kMsrEntrySize = 16;

// --- libxl stream ---
inline constexpr uint64_t kLibxlIdent = 0x4c6962786c466d74ull;  // "LibxlFmt"
inline constexpr uint32_t kLibxlVersion = 2;
inline constexpr uint32_t kLibxlHeaderSize = 16;
enum class LibxlRec : uint32_t {
  kEnd = 0,
  kLibxcContext = 1,
  kEmulatorXenstoreData = 2,
  kEmulatorContext = 3,
  kCheckpointEnd = 4,
  kCheckpointState = 5,
};
std::string_view LibxlRecName(uint32_t type);
enum class EmulatorId : uint32_t { kUnknown = 0, kQemuTraditional = 1, kQemuUpstream = 2 };

// --- xl save-file header (tools/xl/xl.h) ---
inline constexpr std::string_view kXlMagic{"Xen saved domain, xl format\n \0 \r", 32};
inline constexpr uint32_t kXlByteorder = 0x01020304;
inline constexpr uint32_t kXlFlagJson = 1u << 0;      // optional data holds the config as JSON
inline constexpr uint32_t kXlFlagStreamV2 = 1u << 1;  // a libxl stream follows
inline constexpr uint32_t kXlHeaderSize = 48;

// --- HVM context (XEN_DOMCTL_gethvmcontext blob, public/arch-x86/hvm/save.h) ---
// A sequence of {u16 typecode, u16 instance, u32 length} descriptors, each
// followed by `length` bytes; HEADER first, END last.
inline constexpr uint16_t kHvmSaveEnd = 0;
inline constexpr uint16_t kHvmSaveHeader = 1;
inline constexpr uint16_t kHvmSaveCpu = 2;
inline constexpr uint32_t kHvmFileMagic = 0x54381286;
inline constexpr uint32_t kHvmFileVersion = 1;
inline constexpr uint32_t kHvmSaveHeaderSize = 24;
inline constexpr uint32_t kHvmHwCpuSize = 1032;  // struct hvm_hw_cpu, Xen 4.17

// HVM params (public/hvm/params.h) the toolstack migrates.
inline constexpr uint32_t kHvmParamCallbackIrq = 0;
inline constexpr uint32_t kHvmParamStorePfn = 1;
inline constexpr uint32_t kHvmParamConsolePfn = 17;
inline constexpr uint32_t kHvmParamIoreqPfn = 5;
inline constexpr uint32_t kHvmParamBufioreqPfn = 6;
inline constexpr uint32_t kHvmParamAcpiSState = 14;

}  // namespace xm::xen
