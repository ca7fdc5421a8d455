# AMD EPYC 7002 (Rome, Zen 2). Written from AMD's APM, not dumped from a machine.
amd:
fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush
mmx fxsr sse sse2 htt
sse3 pclmulqdq monitor ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aesni xsave
osxsave avx f16c rdrand
syscall nx mmxext ffxsr page1gb rdtscp lm
lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch
osvw ibs skinit wdt topoext monitorx
xsaveopt xsavec xgetbv1 xsaves
fsgsbase bmi1 avx2 smep bmi2 rdseed adx smap clflushopt clwb sha
umip rdpid
itsc
clzero rstr_fp_err_ptrs wbnoinvd ibpb amd_stibp amd_ssbd
