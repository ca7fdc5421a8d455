# Intel Xeon E5 v3 (Haswell-EP), CPUID as the host sees it, with the
# post-2018 microcode speculation controls. Written from the Intel SDM's
# per-generation feature lists, not dumped from a machine.
intel:
fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush
ds acpi mmx fxsr sse sse2 ss htt tm1 pbe
sse3 pclmulqdq dtes64 monitor dscpl vmx smx eist tm2 ssse3 fma cx16 xtpr pdcm
pcid dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline aesni xsave osxsave avx
f16c rdrand
syscall nx page1gb rdtscp lm
lahf_lm abm
xsaveopt
fsgsbase tsc_adjust bmi1 hle avx2 fdp_excp_only smep bmi2 erms invpcid rtm pqm
no_fpu_sel
itsc
md_clear ibrsb stibp l1d_flush ssbd
