// Swift's view of rabbitmq-c. Debian 12 ships flat headers; newer releases nest them.
#ifndef HYPERION_CRABBITMQ_SHIM_H
#define HYPERION_CRABBITMQ_SHIM_H

#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/framing.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#else
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#endif

// amqp_login_with_properties is variadic and does not import into Swift; this fixed-arity
// wrapper covers the PLAIN mechanism, which is the only one Hyperion uses.
static inline amqp_rpc_reply_t hyperion_amqp_login_plain(
    amqp_connection_state_t state, const char *vhost, int channel_max, int frame_max,
    int heartbeat, const amqp_table_t *client_properties, const char *user,
    const char *password) {
  return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat,
                                    client_properties, AMQP_SASL_METHOD_PLAIN, user,
                                    password);
}

#endif
