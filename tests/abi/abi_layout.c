/* The ABI layout as seen by a C compiler (compile-time checks), and FLOWRELAY_HAS_SLOT
 * evaluated in C for the C++ test. */
#include <stdalign.h>
#include <stddef.h>

#include "abi_expected_layout.h"

#if !defined(__LP64__) && !defined(_LP64)
#error "the expected layout is the LP64 one"
#endif

#define CHECK_FIELD(type, field, offset)            \
  _Static_assert(offsetof(type, field) == (offset), \
                 "ABI break: offset of " #type "." #field " moved");
#define CHECK_SIZE(type, size, align)                                             \
  _Static_assert(sizeof(type) == (size), "ABI break: size of " #type " changed"); \
  _Static_assert(alignof(type) == (align), "ABI break: alignment of " #type " changed");
FLOWRELAY_ABI_FIELDS(CHECK_FIELD)
FLOWRELAY_ABI_SIZES(CHECK_SIZE)

_Static_assert(
    FLOWRELAY_ABI_MAJOR == 2 && FLOWRELAY_ABI_MINOR == 2,
    "ABI version changed: a new major renames the entry symbol, a new minor only appends");
_Static_assert(FLOWRELAY_OK == 0 && FLOWRELAY_PENDING == 1 && FLOWRELAY_EINVAL == 2 &&
                   FLOWRELAY_EAGAIN == 3 && FLOWRELAY_EUNAVAIL == 4 && FLOWRELAY_ENOMEM == 5 &&
                   FLOWRELAY_EUNSUPPORTED == 6 && FLOWRELAY_EINTERNAL == 7,
               "status codes are never renumbered");
_Static_assert(FLOWRELAY_LANE_MESSAGE == 0 && FLOWRELAY_LANE_LOG == 1,
               "lanes are never renumbered");
_Static_assert(FLOWRELAY_LOG_ERROR == 3 && FLOWRELAY_LOG_WARNING == 4 &&
                   FLOWRELAY_LOG_NOTICE == 5 && FLOWRELAY_LOG_INFO == 6 && FLOWRELAY_LOG_DEBUG == 7,
               "log levels are syslog's");

int abi_c_has_set_ready_slot(uint32_t struct_size) {
  flowrelay_broker_host_api api = {0};
  api.struct_size = struct_size;
  return FLOWRELAY_HAS_SLOT(&api, flowrelay_broker_host_api, set_ready);
}
