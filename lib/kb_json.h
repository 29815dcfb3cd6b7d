/*
 * kb_json.h - the JSON form of protobuf messages (docs/JSON.md).
 *
 * One generic mapping driven by protobuf-c descriptors, used by the CLI,
 * the SDK (ketenbus_msg_from_json/to_json/set/get) and the adapter daemon:
 * - keys are the proto field names; unknown keys are errors;
 * - enums are their value names without the enum's prefix, lowercase
 *   ("signal", "child_protection", "h2"); input is case-insensitive and may
 *   carry the prefix ("KIND_SIGNAL"); a value without a name in this version
 *   is written, and accepted, as its number;
 * - 16-byte ids (message_id, correlation_id, about_message_id) are UUID text,
 *   other bytes lowercase hex;
 * - int64 fields named *_us are RFC 3339 UTC text on output (an integer
 *   outside the years 0001-9999) and accept either on input; other 64-bit
 *   integers are JSON numbers;
 * - a oneof member appears as its field name ("signal": {...});
 * - fields at their proto3 default (0, "", false, empty) are omitted; on
 *   input null means "not given";
 * - fields are written in field-number order.
 * Decoding errors name the JSON path of the offending value. Text that
 * json-c would take silently but ambiguously is refused: keys given twice,
 * integers beyond 64 bits, keys with \u0000.
 */
#ifndef KB_JSON_H
#define KB_JSON_H

#include <stddef.h>

#include <json-c/json.h>
#include <protobuf-c/protobuf-c.h>

/* Limits for untrusted JSON text. */
#define KB_JSON_MAX_BYTES (4u * 1024u * 1024u)
#define KB_JSON_MAX_DEPTH 16

/* A new JSON object for msg; NULL on no memory. Caller puts it. */
json_object *kb_json_from_msg(const ProtobufCMessage *msg);

/* Compact one-line JSON text (pretty: indented); caller frees. */
char *kb_json_encode(const ProtobufCMessage *msg, int pretty);

/* Fill a new message of type desc from a JSON object. On KB_OK *out is the
 * caller's (free with protobuf_c_message_free_unpacked(*out, NULL)). On
 * KB_EPROTO kb_last_error() names the path: "signal.urgency: unknown value
 * \"very\" (expected routine, priority, urgent)". A json_object no longer
 * shows keys given twice or saturated integers: for untrusted text use
 * kb_json_decode, which refuses those. */
int kb_json_to_msg(json_object *obj, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);

/* Parse text (at most KB_JSON_MAX_BYTES, else KB_ETOOBIG; syntax errors as
 * KB_EPROTO with "line L, column C: ...") and then kb_json_to_msg. */
int kb_json_decode(const char *text, size_t len, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);

/* Set one field of msg by dotted path from JSON text form of the value
 * ("purpose", "child_protection"); repeated fields get the value appended,
 * message fields on the path are created, and setting a oneof member clears
 * the member that was set. A message field takes JSON object text. msg must
 * be in unpacked form (kb_codec.h). KB_ENOTFOUND (unknown path), KB_EPROTO
 * (value does not fit; msg is left as it was), KB_EINVAL, KB_ENOMEM. */
int kb_json_set_path(ProtobufCMessage *msg, const char *path, const char *value);

/* The value at path in JSON text form (strings without quotes, repeated
 * fields as a JSON array, messages as a JSON object); caller frees; NULL if
 * unknown or unset (proto3: at its default value), kb_last_error() says
 * which. */
char *kb_json_get_path(const ProtobufCMessage *msg, const char *path);

#endif
