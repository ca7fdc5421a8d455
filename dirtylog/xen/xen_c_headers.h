// Xen's C toolstack headers, as C++ sees them. Debian's libxen-dev headers
// have no extern "C" guards and use GNU anonymous unions, so they are included
// only through here, from files built as gnu++20 (see CMakeLists.txt).
#pragma once

extern "C" {
#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenguest.h>
#include <xenstore.h>
#include <xentoollog.h>
#include <libxl.h>
#include <libxl_utils.h>
#include <xen/hvm/params.h>
}
