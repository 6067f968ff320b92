/*
 * The frozen LP64 layout of ABI 2.2 (x86-64 and aarch64 Linux), written out as numbers: a field
 * moved, removed, inserted before the end or resized changes one of them and the C and C++
 * translation units that static_assert them stop compiling. Tables may only grow at their
 * end: a new slot appends a FIELD line and changes the SIZE line, nothing else.
 */
#ifndef FLOWRELAY_ABI_EXPECTED_LAYOUT_H
#define FLOWRELAY_ABI_EXPECTED_LAYOUT_H

#include <flowrelay/plugin.h>

/* X(type, field, offset): every field of every type of the ABI. */
#define FLOWRELAY_ABI_FIELDS(X)                        \
  X(flowrelay_str, ptr, 0)                             \
  X(flowrelay_str, len, 8)                             \
  X(flowrelay_option, key, 0)                          \
  X(flowrelay_option, value, 16)                       \
  X(flowrelay_origin, node, 0)                         \
  X(flowrelay_origin, session, 8)                      \
  X(flowrelay_origin, seq, 16)                         \
  X(flowrelay_message, struct_size, 0)                 \
  X(flowrelay_message, lane, 4)                        \
  X(flowrelay_message, offset, 8)                      \
  X(flowrelay_message, epoch, 16)                      \
  X(flowrelay_message, origin, 32)                     \
  X(flowrelay_message, data, 56)                       \
  X(flowrelay_message, reply, 72)                      \
  X(flowrelay_history, struct_size, 0)                 \
  X(flowrelay_history, epoch, 8)                       \
  X(flowrelay_history, top, 24)                        \
  X(flowrelay_history, messages, 32)                   \
  X(flowrelay_history, count, 40)                      \
  X(flowrelay_history, trimmed, 48)                    \
  X(flowrelay_broker_host_api, struct_size, 0)         \
  X(flowrelay_broker_host_api, abi_minor, 4)           \
  X(flowrelay_broker_host_api, node_id, 8)             \
  X(flowrelay_broker_host_api, config_dir, 16)         \
  X(flowrelay_broker_host_api, log, 32)                \
  X(flowrelay_broker_host_api, now_ms, 40)             \
  X(flowrelay_broker_host_api, report_error, 48)       \
  X(flowrelay_broker_host_api, set_ready, 56)          \
  X(flowrelay_broker_host_api, deliver, 64)            \
  X(flowrelay_broker_host_api, subscribed, 72)         \
  X(flowrelay_broker_vtable, struct_size, 0)           \
  X(flowrelay_broker_vtable, abi_major, 4)             \
  X(flowrelay_broker_vtable, create, 8)                \
  X(flowrelay_broker_vtable, start, 16)                \
  X(flowrelay_broker_vtable, destroy, 24)              \
  X(flowrelay_broker_vtable, publish, 32)              \
  X(flowrelay_broker_vtable, history, 40)              \
  X(flowrelay_broker_vtable, subscribe, 48)            \
  X(flowrelay_broker_vtable, unsubscribe, 56)          \
  X(flowrelay_broker_vtable, metrics, 64)              \
  X(flowrelay_broker_vtable, reconfigure, 72)          \
  X(flowrelay_broker_vtable, presence_set, 80)         \
  X(flowrelay_broker_vtable, presence, 88)             \
  X(flowrelay_broker_vtable, publish_reply, 96)        \
  X(flowrelay_transport_host_api, struct_size, 0)      \
  X(flowrelay_transport_host_api, abi_minor, 4)        \
  X(flowrelay_transport_host_api, node_id, 8)          \
  X(flowrelay_transport_host_api, config_dir, 16)      \
  X(flowrelay_transport_host_api, channel_prefix, 32)  \
  X(flowrelay_transport_host_api, echo, 48)            \
  X(flowrelay_transport_host_api, log, 56)             \
  X(flowrelay_transport_host_api, new_session_id, 64)  \
  X(flowrelay_transport_host_api, subscribe, 72)       \
  X(flowrelay_transport_host_api, unsubscribe, 80)     \
  X(flowrelay_transport_host_api, publish, 88)         \
  X(flowrelay_transport_host_api, history, 96)         \
  X(flowrelay_transport_host_api, publish_client, 104) \
  X(flowrelay_transport_host_api, authorize, 112)      \
  X(flowrelay_transport_host_api, client_event, 120)   \
  X(flowrelay_transport_host_api, publish_reply, 128)  \
  X(flowrelay_reply, struct_size, 0)                   \
  X(flowrelay_reply, kind, 4)                          \
  X(flowrelay_reply, id, 8)                            \
  X(flowrelay_reply, seq, 24)                          \
  X(flowrelay_reply, reason, 32)                       \
  X(flowrelay_reply, error, 48)                        \
  X(flowrelay_reply, ttft_ms, 64)                      \
  X(flowrelay_reply, duration_ms, 72)                  \
  X(flowrelay_reply, bytes, 80)                        \
  X(flowrelay_reply_published, struct_size, 0)         \
  X(flowrelay_reply_published, status, 4)              \
  X(flowrelay_reply_published, duplicate, 8)           \
  X(flowrelay_reply_published, offset, 16)             \
  X(flowrelay_reply_published, epoch, 24)              \
  X(flowrelay_reply_published, expected_seq, 40)       \
  X(flowrelay_reply_published, ended, 48)              \
  X(flowrelay_client_info, struct_size, 0)             \
  X(flowrelay_client_info, session, 8)                 \
  X(flowrelay_client_info, conversation, 16)           \
  X(flowrelay_client_info, user, 32)                   \
  X(flowrelay_client_info, remote_addr, 48)            \
  X(flowrelay_client_info, transport, 64)              \
  X(flowrelay_client_published, struct_size, 0)        \
  X(flowrelay_client_published, status, 4)             \
  X(flowrelay_client_published, relayed, 8)            \
  X(flowrelay_client_published, code, 12)              \
  X(flowrelay_client_published, offset, 16)            \
  X(flowrelay_client_published, epoch, 24)             \
  X(flowrelay_client_published, reason, 40)            \
  X(flowrelay_connect_request, struct_size, 0)         \
  X(flowrelay_connect_request, conversation, 8)        \
  X(flowrelay_connect_request, cookie, 24)             \
  X(flowrelay_connect_request, authorization, 40)      \
  X(flowrelay_connect_request, remote_addr, 56)        \
  X(flowrelay_connect_request, transport, 72)          \
  X(flowrelay_connect_result, struct_size, 0)          \
  X(flowrelay_connect_result, code, 4)                 \
  X(flowrelay_connect_result, can_publish, 8)          \
  X(flowrelay_connect_result, user, 16)                \
  X(flowrelay_connect_result, reason, 32)              \
  X(flowrelay_transport_vtable, struct_size, 0)        \
  X(flowrelay_transport_vtable, abi_major, 4)          \
  X(flowrelay_transport_vtable, create, 8)             \
  X(flowrelay_transport_vtable, start, 16)             \
  X(flowrelay_transport_vtable, stop, 24)              \
  X(flowrelay_transport_vtable, destroy, 32)           \
  X(flowrelay_transport_vtable, deliver, 40)           \
  X(flowrelay_transport_vtable, subscribed, 48)        \
  X(flowrelay_transport_vtable, metrics, 56)           \
  X(flowrelay_transport_vtable, reconfigure, 64)       \
  X(flowrelay_plugin_info, struct_size, 0)             \
  X(flowrelay_plugin_info, abi_major, 4)               \
  X(flowrelay_plugin_info, abi_minor, 8)               \
  X(flowrelay_plugin_info, name, 16)                   \
  X(flowrelay_plugin_info, version, 24)                \
  X(flowrelay_plugin_info, broker, 32)                 \
  X(flowrelay_plugin_info, transport, 40)

/* X(type, size, alignment) */
#define FLOWRELAY_ABI_SIZES(X)            \
  X(flowrelay_str, 16, 8)                 \
  X(flowrelay_option, 32, 8)              \
  X(flowrelay_origin, 24, 8)              \
  X(flowrelay_message, 80, 8)             \
  X(flowrelay_history, 56, 8)             \
  X(flowrelay_broker_host_api, 80, 8)     \
  X(flowrelay_broker_vtable, 104, 8)      \
  X(flowrelay_transport_host_api, 136, 8) \
  X(flowrelay_reply, 88, 8)               \
  X(flowrelay_reply_published, 64, 8)     \
  X(flowrelay_client_info, 80, 8)         \
  X(flowrelay_client_published, 56, 8)    \
  X(flowrelay_connect_request, 88, 8)     \
  X(flowrelay_connect_result, 48, 8)      \
  X(flowrelay_transport_vtable, 72, 8)    \
  X(flowrelay_plugin_info, 48, 8)         \
  X(flowrelay_lane, 4, 4)                 \
  X(flowrelay_kind, 4, 4)                 \
  X(flowrelay_status, 4, 4)               \
  X(flowrelay_log_level, 4, 4)

#ifdef __cplusplus
extern "C" {
#endif
/* Implemented in abi_layout.c: FLOWRELAY_HAS_SLOT(set_ready) of a broker host table of the
 * given struct_size, evaluated by the C compiler. */
int abi_c_has_set_ready_slot(uint32_t struct_size);
#ifdef __cplusplus
}
#endif

#endif /* FLOWRELAY_ABI_EXPECTED_LAYOUT_H */
