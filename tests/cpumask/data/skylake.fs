# Intel Xeon Scalable 1st gen (Skylake-SP): Haswell-EP plus Broadwell's
# rdseed/adx/smap/prefetchw and Skylake's AVX-512 F/DQ/CD/BW/VL, MPX,
# clflushopt/clwb, XSAVEC/XSAVES, protection keys. Written from the SDM.
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
no_fpu_sel mpx pqe avx512f avx512dq rdseed adx smap clflushopt clwb proc_trace
avx512cd avx512bw avx512vl
pku ospke
itsc
md_clear ibrsb stibp l1d_flush ssbd
