# Types for the Cython build of python/rtpcore/sip/_codec.py.
#
# This is an *augmenting* .pxd: Cython compiles the pure-Python source
# python/rtpcore/sip/_codec.py as the extension module rtpcore.sip._codec_c
# and looks up the declarations for that module as rtpcore/sip/_codec_c.pxd
# along the include_path (setup.py passes include_path=["src"]). Declarations
# here turn the classes into extension types with typed slots and the private
# helpers into C functions with typed locals; the Python source stays the one
# implementation. Public functions stay `def` so that both builds accept and
# reject the same arguments (split_header_list is cpdef for the parser's sake;
# given a non-str it raises TypeError where the pure build raises another error).

cimport cython

# Module-level constants the parser uses per message, as C globals: under
# the limited API every use of a Python module global is a dict lookup, and a
# method call on an untyped one (`_SPELLINGS.get`) a lookup by name on top.
# They are not attributes of the compiled module; nothing outside it uses them.
cdef dict _CANONICAL
cdef dict _CANONICAL_KEY
cdef dict _SPELLINGS
cdef dict _COMPACT_OF
cdef frozenset _LIST_HEADERS
cdef tuple _SINGLE_HEADERS
cdef tuple _IDENTITY_ENCODINGS
cdef str _WS
cdef bytes _PLAIN_BYTES
cdef object _TOKEN_RE
cdef object _PARAM_RE
cdef object _BAD_CHAR_RE
cdef object _SIP_URI_RE
cdef object _TEL_URI_RE
cdef object _ABSOLUTE_URI_RE
cdef object _VIA_RE
cdef object _CSEQ_RE
cdef object _DIGITS_RE
cdef object _VERSION_RE
cdef object _DATE_RE
cdef object _MEDIA_TYPE_RE


cdef class URI:
    cdef public str scheme
    cdef public object user
    cdef public object password
    cdef public str host
    cdef public object port
    cdef public dict params
    cdef public object headers
    cdef public object opaque


cdef class Address:
    cdef public object display_name
    cdef public URI uri
    cdef public dict params


cdef class Via:
    cdef public str protocol
    cdef public str transport
    cdef public str host
    cdef public object port
    cdef public dict params


cdef class CSeq:
    cdef public object seq
    cdef public str method


cdef class Headers:
    cdef public list _names
    cdef public list _keys
    cdef public list _values
    cdef public dict _cache

    @cython.locals(entry=tuple)
    cpdef _append(self, str name, str value)


cdef class Message:
    cdef public Headers headers
    cdef public bytes body


cdef class Request(Message):
    cdef public str method
    cdef public URI uri


cdef class Response(Message):
    cdef public object status_code
    cdef public str reason


cdef class Limits:
    cdef public Py_ssize_t max_message_size
    cdef public Py_ssize_t max_body_size
    cdef public Py_ssize_t max_header_count
    cdef public Py_ssize_t max_line_length


cdef Limits _DEFAULT_LIMITS


cdef class KeepAlive:
    pass


cdef class StreamParser:
    cdef public Limits limits
    cdef public bint failed
    cdef bytearray _buffer
    cdef Py_ssize_t _scanned
    cdef Message _head
    cdef Py_ssize_t _body_length

    @cython.locals(buf=bytearray, head=Message, end=Py_ssize_t, length=object)
    cdef _drain(self, list events)


cdef class BodyPart:
    cdef public Headers headers
    cdef public bytes body


@cython.locals(entry=tuple, key=str, canonical=object)
cdef tuple _name_and_key(str name)

cdef object _error(str message, object field, object offset=*)

@cython.locals(end=Py_ssize_t)
cdef Py_ssize_t _skip_ws(str text, Py_ssize_t pos) except -1

@cython.locals(i=Py_ssize_t, close=Py_ssize_t, backslash=Py_ssize_t)
cdef Py_ssize_t _quoted_string_end(str text, Py_ssize_t pos, object field) except -1

@cython.locals(end=Py_ssize_t, i=Py_ssize_t, c=Py_UCS4, out=list)
cdef str _unquote(str text)

cdef str _quote(str text)

@cython.locals(start=Py_ssize_t, i=Py_ssize_t, end=Py_ssize_t, in_angle=bint, c=Py_UCS4,
               parts=list)
cpdef list split_header_list(str value, object field=*)

@cython.locals(params=dict, end=Py_ssize_t)
cdef dict _parse_params(str text, Py_ssize_t pos, object field)

@cython.locals(out=list)
cdef str _format_params(dict params)

cdef object _parse_delta_seconds(str value, str field)

cdef URI _parse_uri(object text, object field)

@cython.locals(end=Py_ssize_t, pos=Py_ssize_t, close=Py_ssize_t, i=Py_ssize_t)
cdef Address _parse_address(object text, object field)

cdef Via _parse_via(object text, object field)

cdef CSeq _parse_cseq(str text)

cdef object _parse_max_forwards(str value)

cdef object _limit_error(str message, str field, int status_code, Py_ssize_t offset=*)

cdef str _decode_line(bytes line, Py_ssize_t offset, object field)

cdef Message _parse_start_line(str line)

cdef _check_version(str version)

@cython.locals(length=Py_ssize_t)
cdef bint _longer_than(str line, Py_ssize_t limit) except -1

@cython.locals(offset=Py_ssize_t, i=Py_ssize_t)
cdef Py_ssize_t _line_offset(list lines, Py_ssize_t index, Py_ssize_t base) except -1

@cython.locals(lines=list, text=str, max_line=Py_ssize_t, name_line=Py_ssize_t, i=Py_ssize_t,
               colon=Py_ssize_t, position=Py_ssize_t, line=str, name=str, value=str,
               entry=tuple, names=list, keys=list, values=list, msg=Message)
cdef Message _parse_head(bytes head, Py_ssize_t base, Limits limits)

@cython.locals(headers=Headers, keys=list, values=list, first=dict, duplicated=bint, i=Py_ssize_t, key=str,
               cseq=CSeq, cache=dict, contacts=list)
cdef _validate(Message msg)

cdef object _content_length(Message msg)

@cython.locals(headers=Headers, end=Py_ssize_t, last=Py_ssize_t)
cdef BodyPart _parse_body_part(bytes chunk)

cdef tuple _disposition(Headers headers)

cdef str _handling(Headers headers)

@cython.locals(i=Py_ssize_t, parts=list, collected=list, part=BodyPart)
cdef object _session_descriptions(Headers headers, bytes body, Py_ssize_t depth)
