// broker-redis: placeholder until the Redis broker lands (issue "broker-redis and cluster
// mode"). It loads, then refuses to be created with a clear message, so a config naming it
// fails at --check-config instead of running without a broker.
#include <flowrelay/plugin.h>

#include <cstdio>

namespace {

flowrelay_status redis_create(const flowrelay_broker_host_api*, flowrelay_host*,
                              const flowrelay_option*, size_t, flowrelay_broker**, char* err,
                              size_t err_cap) {
  std::snprintf(err, err_cap,
                "broker-redis is not implemented in this build yet; use broker-local");
  return FLOWRELAY_EUNSUPPORTED;
}
flowrelay_status redis_start(flowrelay_broker*, char*, size_t) { return FLOWRELAY_EUNSUPPORTED; }
void redis_destroy(flowrelay_broker*) {}
flowrelay_status redis_publish(flowrelay_broker*, flowrelay_str, flowrelay_str) {
  return FLOWRELAY_EUNSUPPORTED;
}
flowrelay_status redis_channel_op(flowrelay_broker*, flowrelay_str) {
  return FLOWRELAY_EUNSUPPORTED;
}

const flowrelay_broker_vtable kVtable = {
    sizeof(flowrelay_broker_vtable), FLOWRELAY_ABI_MAJOR, redis_create,     redis_start,
    redis_destroy,                   redis_publish,       redis_channel_op, redis_channel_op,
};
const flowrelay_plugin_info kInfo = {
    sizeof(flowrelay_plugin_info), FLOWRELAY_ABI_MAJOR, FLOWRELAY_ABI_MINOR, "broker-redis",
    FLOWRELAY_PLUGIN_VERSION,      &kVtable,            nullptr,
};

}  // namespace

extern "C" FLOWRELAY_EXPORT const flowrelay_plugin_info* flowrelay_plugin_entry_v1(uint32_t) {
  return &kInfo;
}
