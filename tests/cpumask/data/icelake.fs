# Intel Xeon Scalable 3rd gen (Ice Lake-SP): Skylake-SP without MPX, plus
# AVX-512 IFMA/VBMI/VBMI2/VNNI/BITALG/VPOPCNTDQ, GFNI, VAES, VPCLMULQDQ,
# SHA, UMIP, RDPID, WBNOINVD, FSRM and IA32_ARCH_CAPABILITIES. Written from the SDM.
intel:
fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush
ds acpi mmx fxsr sse sse2 ss htt tm1 pbe
sse3 pclmulqdq dtes64 monitor dscpl vmx smx eist tm2 ssse3 fma cx16 xtpr pdcm
pcid dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline aesni xsave osxsave avx
f16c rdrand
syscall nx page1gb rdtscp lm
lahf_lm abm 3dnowprefetch
xsaveopt xsavec xgetbv1 xsaves
fsgsbase tsc_adjust bmi1 hle avx2 fdp_excp_only smep bmi2 erms invpcid rtm pqm
no_fpu_sel pqe avx512f avx512dq rdseed adx smap avx512_ifma clflushopt clwb
proc_trace avx512cd sha avx512bw avx512vl
avx512_vbmi umip pku ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni
avx512_bitalg avx512_vpopcntdq rdpid
itsc
wbnoinvd
fsrm md_clear ibrsb stibp l1d_flush arch_caps ssbd
