// The ABI layout as seen by the C++ compiler (static_assert; abi_layout.c does the same in C),
// the function signatures of every slot, and FLOWRELAY_HAS_SLOT.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <type_traits>

#include "abi_expected_layout.h"

static_assert(sizeof(void*) == 8 && sizeof(size_t) == 8, "the expected layout is the LP64 one");

#define CHECK_FIELD(type, field, offset) \
  static_assert(offsetof(type, field) == (offset), "ABI break: offset of " #type "." #field);
#define CHECK_SIZE(type, size, align)                                 \
  static_assert(sizeof(type) == (size), "ABI break: size of " #type); \
  static_assert(alignof(type) == (align), "ABI break: alignment of " #type);
FLOWRELAY_ABI_FIELDS(CHECK_FIELD)
FLOWRELAY_ABI_SIZES(CHECK_SIZE)

// Every table is plain data that C can build and copy.
#define CHECK_TRIVIAL(type, size, align) \
  static_assert(std::is_standard_layout_v<type> && std::is_trivial_v<type>, #type " is not POD");
FLOWRELAY_ABI_SIZES(CHECK_TRIVIAL)

// Signatures: a changed parameter is as much an ABI break as a moved field.
#define CHECK_SLOT(type, field, ...) \
  static_assert(std::is_same_v<decltype(type::field), __VA_ARGS__>, #type "." #field " changed");
using str = flowrelay_str;
using host = flowrelay_host*;
using broker = flowrelay_broker*;
using transport = flowrelay_transport*;
using opts = const flowrelay_option*;
using msg = const flowrelay_message*;
CHECK_SLOT(flowrelay_str, ptr, const char*)
CHECK_SLOT(flowrelay_str, len, size_t)
CHECK_SLOT(flowrelay_option, key, str)
CHECK_SLOT(flowrelay_option, value, str)
CHECK_SLOT(flowrelay_origin, node, uint64_t)
CHECK_SLOT(flowrelay_origin, session, uint64_t)
CHECK_SLOT(flowrelay_origin, seq, uint64_t)
CHECK_SLOT(flowrelay_message, struct_size, uint32_t)
CHECK_SLOT(flowrelay_message, lane, uint32_t)
CHECK_SLOT(flowrelay_message, offset, uint64_t)
CHECK_SLOT(flowrelay_message, epoch, str)
CHECK_SLOT(flowrelay_message, origin, flowrelay_origin)
CHECK_SLOT(flowrelay_message, data, str)
CHECK_SLOT(flowrelay_message, reply, const flowrelay_reply*)
CHECK_SLOT(flowrelay_reply, struct_size, uint32_t)
CHECK_SLOT(flowrelay_reply, kind, uint32_t)
CHECK_SLOT(flowrelay_reply, id, str)
CHECK_SLOT(flowrelay_reply, seq, uint64_t)
CHECK_SLOT(flowrelay_reply, reason, str)
CHECK_SLOT(flowrelay_reply, error, str)
CHECK_SLOT(flowrelay_reply, ttft_ms, int64_t)
CHECK_SLOT(flowrelay_reply, duration_ms, int64_t)
CHECK_SLOT(flowrelay_reply, bytes, uint64_t)
CHECK_SLOT(flowrelay_reply_published, struct_size, uint32_t)
CHECK_SLOT(flowrelay_reply_published, status, int32_t)
CHECK_SLOT(flowrelay_reply_published, duplicate, int32_t)
CHECK_SLOT(flowrelay_reply_published, offset, uint64_t)
CHECK_SLOT(flowrelay_reply_published, epoch, str)
CHECK_SLOT(flowrelay_reply_published, expected_seq, uint64_t)
CHECK_SLOT(flowrelay_reply_published, ended, str)
CHECK_SLOT(flowrelay_history, struct_size, uint32_t)
CHECK_SLOT(flowrelay_history, epoch, str)
CHECK_SLOT(flowrelay_history, top, uint64_t)
CHECK_SLOT(flowrelay_history, messages, msg)
CHECK_SLOT(flowrelay_history, count, size_t)
CHECK_SLOT(flowrelay_history, trimmed, uint64_t)
static_assert(std::is_same_v<flowrelay_write_fn, void (*)(void*, str)>);
static_assert(std::is_same_v<flowrelay_published_fn, void (*)(void*, int32_t, uint64_t, str)>);
static_assert(
    std::is_same_v<flowrelay_history_fn, void (*)(void*, int32_t, const flowrelay_history*)>);

CHECK_SLOT(flowrelay_broker_host_api, struct_size, uint32_t)
CHECK_SLOT(flowrelay_broker_host_api, abi_minor, uint32_t)
CHECK_SLOT(flowrelay_broker_host_api, node_id, uint64_t)
CHECK_SLOT(flowrelay_broker_host_api, config_dir, str)
CHECK_SLOT(flowrelay_broker_host_api, log, void (*)(host, int32_t, str))
CHECK_SLOT(flowrelay_broker_host_api, now_ms, int64_t (*)(host))
CHECK_SLOT(flowrelay_broker_host_api, report_error, void (*)(host, int32_t, str))
CHECK_SLOT(flowrelay_broker_host_api, set_ready, void (*)(host, int32_t))
CHECK_SLOT(flowrelay_broker_host_api, deliver, void (*)(host, str, msg))
CHECK_SLOT(flowrelay_broker_host_api, subscribed, void (*)(host, str, int32_t))

CHECK_SLOT(flowrelay_broker_vtable, struct_size, uint32_t)
CHECK_SLOT(flowrelay_broker_vtable, abi_major, uint32_t)
CHECK_SLOT(flowrelay_broker_vtable, create,
           int32_t (*)(const flowrelay_broker_host_api*, host, opts, size_t, flowrelay_broker**,
                       char*, size_t))
CHECK_SLOT(flowrelay_broker_vtable, start, int32_t (*)(broker, char*, size_t))
CHECK_SLOT(flowrelay_broker_vtable, destroy, void (*)(broker))
CHECK_SLOT(flowrelay_broker_vtable, publish,
           int32_t (*)(broker, str, msg, flowrelay_published_fn, void*))
CHECK_SLOT(flowrelay_broker_vtable, history,
           int32_t (*)(broker, str, uint64_t, flowrelay_history_fn, void*))
CHECK_SLOT(flowrelay_broker_vtable, subscribe, int32_t (*)(broker, str))
CHECK_SLOT(flowrelay_broker_vtable, unsubscribe, void (*)(broker, str))
CHECK_SLOT(flowrelay_broker_vtable, metrics, void (*)(broker, flowrelay_write_fn, void*))
CHECK_SLOT(flowrelay_broker_vtable, reconfigure, int32_t (*)(broker, opts, size_t, char*, size_t))
CHECK_SLOT(flowrelay_broker_vtable, presence_set, void (*)(broker, str, uint64_t))
CHECK_SLOT(flowrelay_broker_vtable, presence,
           int32_t (*)(broker, str, flowrelay_presence_fn, void*))
static_assert(std::is_same_v<flowrelay_presence_fn, void (*)(void*, int32_t, uint64_t, uint32_t)>);
CHECK_SLOT(flowrelay_broker_vtable, publish_reply,
           int32_t (*)(broker, str, msg, flowrelay_reply_published_fn, void*))
static_assert(std::is_same_v<flowrelay_reply_published_fn,
                             void (*)(void*, const flowrelay_reply_published*)>);

CHECK_SLOT(flowrelay_transport_host_api, struct_size, uint32_t)
CHECK_SLOT(flowrelay_transport_host_api, abi_minor, uint32_t)
CHECK_SLOT(flowrelay_transport_host_api, node_id, uint64_t)
CHECK_SLOT(flowrelay_transport_host_api, config_dir, str)
CHECK_SLOT(flowrelay_transport_host_api, channel_prefix, str)
CHECK_SLOT(flowrelay_transport_host_api, echo, int32_t)
CHECK_SLOT(flowrelay_transport_host_api, log, void (*)(host, int32_t, str))
CHECK_SLOT(flowrelay_transport_host_api, new_session_id, uint64_t (*)(host))
CHECK_SLOT(flowrelay_transport_host_api, subscribe, int32_t (*)(host, str))
CHECK_SLOT(flowrelay_transport_host_api, unsubscribe, void (*)(host, str))
CHECK_SLOT(flowrelay_transport_host_api, publish,
           int32_t (*)(host, str, msg, flowrelay_published_fn, void*))
CHECK_SLOT(flowrelay_transport_host_api, history,
           int32_t (*)(host, str, uint64_t, flowrelay_history_fn, void*))
CHECK_SLOT(flowrelay_transport_host_api, publish_client,
           int32_t (*)(host, str, msg, const flowrelay_client_info*, flowrelay_client_published_fn,
                       void*))
CHECK_SLOT(flowrelay_transport_host_api, authorize,
           int32_t (*)(host, const flowrelay_connect_request*, flowrelay_connect_fn, void*))
CHECK_SLOT(flowrelay_transport_host_api, client_event,
           void (*)(host, int32_t, const flowrelay_client_info*))
CHECK_SLOT(flowrelay_transport_host_api, publish_reply,
           int32_t (*)(host, str, msg, const flowrelay_client_info*, flowrelay_reply_published_fn,
                       void*))
static_assert(std::is_same_v<flowrelay_client_published_fn,
                             void (*)(void*, const flowrelay_client_published*)>);
static_assert(
    std::is_same_v<flowrelay_connect_fn, void (*)(void*, const flowrelay_connect_result*)>);

CHECK_SLOT(flowrelay_client_info, struct_size, uint32_t)
CHECK_SLOT(flowrelay_client_info, session, uint64_t)
CHECK_SLOT(flowrelay_client_info, conversation, str)
CHECK_SLOT(flowrelay_client_info, user, str)
CHECK_SLOT(flowrelay_client_info, remote_addr, str)
CHECK_SLOT(flowrelay_client_info, transport, str)
CHECK_SLOT(flowrelay_client_published, struct_size, uint32_t)
CHECK_SLOT(flowrelay_client_published, status, int32_t)
CHECK_SLOT(flowrelay_client_published, relayed, int32_t)
CHECK_SLOT(flowrelay_client_published, code, uint32_t)
CHECK_SLOT(flowrelay_client_published, offset, uint64_t)
CHECK_SLOT(flowrelay_client_published, epoch, str)
CHECK_SLOT(flowrelay_client_published, reason, str)
CHECK_SLOT(flowrelay_connect_request, struct_size, uint32_t)
CHECK_SLOT(flowrelay_connect_request, conversation, str)
CHECK_SLOT(flowrelay_connect_request, cookie, str)
CHECK_SLOT(flowrelay_connect_request, authorization, str)
CHECK_SLOT(flowrelay_connect_request, remote_addr, str)
CHECK_SLOT(flowrelay_connect_request, transport, str)
CHECK_SLOT(flowrelay_connect_result, struct_size, uint32_t)
CHECK_SLOT(flowrelay_connect_result, code, uint32_t)
CHECK_SLOT(flowrelay_connect_result, can_publish, int32_t)
CHECK_SLOT(flowrelay_connect_result, user, str)
CHECK_SLOT(flowrelay_connect_result, reason, str)

CHECK_SLOT(flowrelay_transport_vtable, struct_size, uint32_t)
CHECK_SLOT(flowrelay_transport_vtable, abi_major, uint32_t)
CHECK_SLOT(flowrelay_transport_vtable, create,
           int32_t (*)(const flowrelay_transport_host_api*, host, opts, size_t,
                       flowrelay_transport**, char*, size_t))
CHECK_SLOT(flowrelay_transport_vtable, start, int32_t (*)(transport, char*, size_t))
CHECK_SLOT(flowrelay_transport_vtable, stop, void (*)(transport, uint32_t))
CHECK_SLOT(flowrelay_transport_vtable, destroy, void (*)(transport))
CHECK_SLOT(flowrelay_transport_vtable, deliver, void (*)(transport, str, msg))
CHECK_SLOT(flowrelay_transport_vtable, subscribed, void (*)(transport, str, int32_t))
CHECK_SLOT(flowrelay_transport_vtable, metrics, void (*)(transport, flowrelay_write_fn, void*))
CHECK_SLOT(flowrelay_transport_vtable, reconfigure,
           int32_t (*)(transport, opts, size_t, char*, size_t))

CHECK_SLOT(flowrelay_plugin_info, struct_size, uint32_t)
CHECK_SLOT(flowrelay_plugin_info, abi_major, uint32_t)
CHECK_SLOT(flowrelay_plugin_info, abi_minor, uint32_t)
CHECK_SLOT(flowrelay_plugin_info, name, const char*)
CHECK_SLOT(flowrelay_plugin_info, version, const char*)
CHECK_SLOT(flowrelay_plugin_info, broker, const flowrelay_broker_vtable*)
CHECK_SLOT(flowrelay_plugin_info, transport, const flowrelay_transport_vtable*)
static_assert(
    std::is_same_v<flowrelay_plugin_entry_fn, const flowrelay_plugin_info* (*)(uint32_t)>);

static_assert(FLOWRELAY_OK == 0 && FLOWRELAY_PENDING == 1 && FLOWRELAY_EINVAL == 2 &&
                  FLOWRELAY_EAGAIN == 3 && FLOWRELAY_EUNAVAIL == 4 && FLOWRELAY_ENOMEM == 5 &&
                  FLOWRELAY_EUNSUPPORTED == 6 && FLOWRELAY_EINTERNAL == 7 &&
                  FLOWRELAY_ECONFLICT == 8 && FLOWRELAY_ETOOBIG == 9,
              "status codes are never renumbered");
static_assert(FLOWRELAY_LANE_MESSAGE == 0 && FLOWRELAY_LANE_LOG == 1, "lanes are never renumbered");
static_assert(FLOWRELAY_KIND_MESSAGE == 0 && FLOWRELAY_KIND_OPEN == 1 && FLOWRELAY_KIND_DELTA == 2 &&
                  FLOWRELAY_KIND_END == 3 && FLOWRELAY_KIND_SNAPSHOT == 4 &&
                  FLOWRELAY_KIND_REPLY == 5 && FLOWRELAY_KIND_STALLED == 6,
              "reply kinds are never renumbered");
static_assert(FLOWRELAY_LOG_ERROR == 3 && FLOWRELAY_LOG_WARNING == 4 && FLOWRELAY_LOG_NOTICE == 5 &&
                  FLOWRELAY_LOG_INFO == 6 && FLOWRELAY_LOG_DEBUG == 7,
              "log levels are syslog's");

namespace {

TEST(AbiLayout, EntrySymbolNameIsVersioned) {
  EXPECT_STREQ(FLOWRELAY_ENTRY_SYMBOL, "flowrelay_plugin_entry_v2");
  EXPECT_EQ(FLOWRELAY_ABI_MAJOR, 2);
  EXPECT_EQ(FLOWRELAY_ABI_MINOR, 2);
}

TEST(AbiLayout, HasSlotCoversExactlyTheFieldsInsideStructSize) {
  flowrelay_broker_host_api api;
  std::memset(&api, 0, sizeof api);
  api.struct_size = offsetof(flowrelay_broker_host_api, set_ready);  // an "older" table
  EXPECT_TRUE(FLOWRELAY_HAS_SLOT(&api, flowrelay_broker_host_api, report_error));
  EXPECT_FALSE(FLOWRELAY_HAS_SLOT(&api, flowrelay_broker_host_api, set_ready));
  api.struct_size = sizeof api;
  EXPECT_TRUE(FLOWRELAY_HAS_SLOT(&api, flowrelay_broker_host_api, set_ready));
  api.struct_size = offsetof(flowrelay_broker_host_api, set_ready) + 4;  // half a pointer
  EXPECT_FALSE(FLOWRELAY_HAS_SLOT(&api, flowrelay_broker_host_api, set_ready));
}

TEST(AbiLayout, HasSlotGivesTheSameAnswerInC) {
  const uint32_t full = sizeof(flowrelay_broker_host_api);
  const uint32_t older = offsetof(flowrelay_broker_host_api, set_ready);
  EXPECT_EQ(abi_c_has_set_ready_slot(full), 1);
  EXPECT_EQ(abi_c_has_set_ready_slot(full + 8), 1);  // a newer host's larger table
  EXPECT_EQ(abi_c_has_set_ready_slot(older), 0);
  EXPECT_EQ(abi_c_has_set_ready_slot(older + 7), 0);
  EXPECT_EQ(abi_c_has_set_ready_slot(0), 0);
}

}  // namespace
