# cython: language_level=3, boundscheck=True, wraparound=False, initializedcheck=True
"""The compiled twin of ``fastwire`` (optional; issue 11): the same reader, step for step, in typed
Cython, about four times faster; and of ``wire.b64decode_strict``'s canonical case (at the end). ``fastwire``'s docstring is this module's contract too: the event
read here is exactly the one the generic reader returns, and anything unusual is refused (None), so
the generic reader decides it. It is built only where a C compiler exists (``setup.py``); without
it, or with ``XCHAT_VERIFY_PURE_PYTHON=1``, ``wire`` uses ``fastwire``. tests/test_cfastwire.py
checks the two agree on every seed, the structural-fuzz corpus, random mutations and odd limits.

Why by hand: no Thrift library reads with the SDK's strictness (thriftpy2's compiled protocol
silently skipped a hostile list header), and this is ``fastwire`` with C integers.

Every read is bounds-checked twice: explicitly against the buffer's end, and by the memoryview
(``boundscheck``), so hostile bytes can only make it refuse.
"""

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

from . import fastwire
from .fastwire import _DETAIL_MEMBERS
from .wire import _MIN_SIZES, EventSignature, MessageEvent, SigningKeyInfo, _resolve_detail

include "_cfastwire_source.pxi"  # SOURCE_SHA256 of this file, written by setup.py: a stale build is refused

cdef enum:  # fastwire's field kinds, and the Thrift types read here
    K_UTF8 = 0
    K_BYTES = 1
    K_BOOL = 2
    K_INT32 = 3
    K_INT64 = 4
    K_STRUCT = 5
    K_UNION = 6
    K_LIST = 7
    T_BOOL = 2
    T_I32 = 8
    T_STRING = 11
    T_STRUCT = 12
    T_LIST = 15


class _Unusual(Exception):
    """Not the common shape: the generic reader decides."""


def _key(header):
    """fastwire's 3-byte header (type, big-endian id) as an int."""
    return header[0] << 16 | header[1] << 8 | header[2]


def _table(table):
    """fastwire's table, keyed by int headers."""
    out = {}
    for header, (name, kind, sub) in table.items():
        if kind == K_STRUCT:
            sub = _table(sub)
        elif kind == K_UNION:
            sub = _members(sub)
        elif kind == K_LIST:
            etype, ekind, esub = sub
            sub = (etype, ekind, _table(esub) if ekind == K_STRUCT else None)
        out[_key(header)] = (name, kind, sub)
    return out


def _members(members):
    return {_key(header): (kind, _table(table)) for header, (kind, table) in members.items()}


_DETAIL = _members(_DETAIL_MEMBERS)


cdef inline int32_t _i32(const unsigned char[::1] v, Py_ssize_t pos, Py_ssize_t end) except? -1:
    if pos + 4 > end:
        raise _Unusual
    return <int32_t>(<uint32_t>v[pos] << 24 | <uint32_t>v[pos + 1] << 16 | <uint32_t>v[pos + 2] << 8 | <uint32_t>v[pos + 3])


cdef inline int64_t _i64(const unsigned char[::1] v, Py_ssize_t pos, Py_ssize_t end) except? -1:
    if pos + 8 > end:
        raise _Unusual
    cdef uint64_t value = 0
    cdef Py_ssize_t at
    for at in range(pos, pos + 8):
        value = value << 8 | v[at]
    return <int64_t>value


cdef inline int _header_at(const unsigned char[::1] v, Py_ssize_t pos, Py_ssize_t end) except -1:
    if pos + 3 > end:
        raise _Unusual
    return v[pos] << 16 | v[pos + 1] << 8 | v[pos + 2]


cdef class _Cursor:
    """The bounds of one event: buffer end, depth and the cumulative element budget."""

    cdef bytes buf
    cdef const unsigned char[::1] view
    cdef Py_ssize_t end
    cdef long long max_depth
    cdef long long max_container
    cdef long long elements_left

    def __init__(self, bytes buf, limits):
        self.buf = buf
        self.view = buf
        self.end = len(buf)
        self.max_depth = limits.max_depth
        self.max_container = limits.max_container_elements
        self.elements_left = limits.max_total_elements

    cdef object text(self, Py_ssize_t pos, Py_ssize_t n, bint utf8):
        if utf8:
            return self.buf[pos:pos + n].decode("utf-8")
        return self.buf[pos:pos + n]

    cdef tuple struct(self, Py_ssize_t pos, dict table, long long depth):
        cdef const unsigned char[::1] v = self.view
        cdef Py_ssize_t end = self.end
        cdef Py_ssize_t n
        cdef long read = 0
        cdef int kind
        cdef dict out = {}
        if depth > self.max_depth:
            raise _Unusual
        while True:
            if pos >= end:
                raise _Unusual
            if v[pos] == 0:
                if read != len(out):
                    raise _Unusual  # a repeated field: last-wins and shadowing are the generic reader's
                return out, pos + 1
            spec = table.get(_header_at(v, pos, end))
            if spec is None:
                raise _Unusual
            name, kind, sub = spec
            read += 1
            if kind <= K_BYTES:
                n = _i32(v, pos + 3, end)
                pos += 7
                if n < 0 or n > end - pos:
                    raise _Unusual
                out[name] = self.text(pos, n, kind == K_UTF8)
                pos += n
            elif kind == K_BOOL:
                if pos + 4 > end:
                    raise _Unusual
                out[name] = v[pos + 3] != 0
                pos += 4
            elif kind == K_INT32:
                out[name] = _i32(v, pos + 3, end)
                pos += 7
            elif kind == K_INT64:
                out[name] = _i64(v, pos + 3, end)
                pos += 11
            elif kind == K_STRUCT:
                out[name], pos = self.struct(pos + 3, sub, depth + 1)
            elif kind == K_UNION:
                out[name], pos = self.union(pos + 3, sub, depth + 1)
            else:
                out[name], pos = self.list(pos + 3, sub, depth)

    cdef tuple union(self, Py_ssize_t pos, dict members, long long depth):
        """Exactly one known member, then STOP."""
        if depth > self.max_depth:
            raise _Unusual
        member = members.get(_header_at(self.view, pos, self.end))
        if member is None:
            raise _Unusual
        kind, table = member
        body, pos = self.struct(pos + 3, table, depth + 1)
        if pos >= self.end or self.view[pos] != 0:
            raise _Unusual
        return (kind, body), pos + 1

    cdef tuple list(self, Py_ssize_t pos, tuple element, long long depth):
        cdef const unsigned char[::1] v = self.view
        cdef Py_ssize_t end = self.end
        cdef Py_ssize_t n, size, at
        cdef int etype = element[0]
        cdef int kind = element[1]
        sub = element[2]
        if pos + 5 > end or v[pos] != etype:
            raise _Unusual
        n = _i32(v, pos + 1, end)
        pos += 5
        # fastwire subtracts, then refuses a negative budget; compared first here, so nothing wraps
        if n < 0 or n > self.max_container or n > self.elements_left or n * <Py_ssize_t>_MIN_SIZES[etype] > end - pos:
            raise _Unusual
        self.elements_left -= n
        items = []
        if kind == K_STRUCT:
            for at in range(n):
                value, pos = self.struct(pos, sub, depth + 1)
                items.append(value)
        elif kind == K_INT32:
            for at in range(n):
                items.append(_i32(v, pos, end))
                pos += 4
        else:
            for at in range(n):
                size = _i32(v, pos, end)
                pos += 4
                if size < 0 or size > end - pos:
                    raise _Unusual
                items.append(self.text(pos, size, kind == K_UTF8))
                pos += size
        return items, pos


def decode_event_fast(raw, limits):
    """The event if it has the common shape, else None (then ``wire.decode_event_generic`` reads it).
    Anything but ``bytes`` (a bytearray, a memoryview), and limits a C integer cannot hold, are
    ``fastwire``'s to read, so the answer is the same."""
    if type(raw) is not bytes:
        return fastwire.decode_event_fast(raw, limits)
    try:
        cursor = _Cursor(raw, limits)
    except (OverflowError, TypeError):
        return fastwire.decode_event_fast(raw, limits)
    try:
        return _envelope(cursor)
    except (_Unusual, IndexError, UnicodeDecodeError):
        return None


cdef object _envelope(_Cursor cursor):
    """fastwire._envelope: string fields in strictly increasing order, the detail by the cursor."""
    cdef bytes buf = cursor.buf
    cdef const unsigned char[::1] v = cursor.view
    cdef Py_ssize_t end = cursor.end
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t n
    cdef int ttype, fid
    cdef int last = 0
    cdef list values = [None] * 12
    if cursor.max_depth < 1:
        raise _Unusual
    while True:
        if pos >= end:
            raise _Unusual
        ttype = v[pos]
        if ttype == 0:
            break
        fid = _header_at(v, pos, end) & 0xFFFF  # a negative id is > 32767: refused below
        if fid <= last:
            raise _Unusual
        last = fid
        if ttype == T_STRING and (fid <= 6 or fid == 10):
            n = _i32(v, pos + 3, end)
            pos += 7
            if n < 0 or n > end - pos:
                raise _Unusual
            values[fid] = buf[pos:pos + n].decode("utf-8")
            pos += n
        elif ttype == T_STRUCT and fid == 7:
            values[7], pos = cursor.union(pos + 3, _DETAIL, 2)
        elif ttype == T_STRUCT and fid == 9:
            values[9], pos = _signature(cursor, pos + 3)
        elif ttype == T_I32 and fid == 8:
            values[8] = _i32(v, pos + 3, end)
            pos += 7
        elif ttype == T_BOOL and fid == 11:
            if pos + 4 > end:
                raise _Unusual
            values[11] = v[pos + 3] != 0
            pos += 4
        else:
            raise _Unusual
    detail = values[7]
    kind, body = _resolve_detail(detail) if detail is not None else (None, None)
    return MessageEvent(values[1], values[2], values[3], values[4], values[5], values[6], kind, body, values[8],
                        values[9], values[10], values[11], end - pos - 1, [])


cdef tuple _signature(_Cursor cursor, Py_ssize_t pos):
    cdef const unsigned char[::1] v = cursor.view
    cdef Py_ssize_t end = cursor.end
    cdef Py_ssize_t n
    cdef int ttype, fid
    cdef int last = 0
    cdef list values = [None] * 6
    if cursor.max_depth < 2:
        raise _Unusual
    while True:
        if pos >= end:
            raise _Unusual
        ttype = v[pos]
        if ttype == 0:
            break
        fid = _header_at(v, pos, end) & 0xFFFF
        if fid <= last:
            raise _Unusual
        last = fid
        if ttype == T_STRING and fid <= 4:
            n = _i32(v, pos + 3, end)
            pos += 7
            if n < 0 or n > end - pos:
                raise _Unusual
            values[fid] = cursor.buf[pos:pos + n].decode("utf-8")
            pos += n
        elif ttype == T_LIST and fid == 5:
            values[5], pos = _key_infos(cursor, pos + 3)
        else:
            raise _Unusual
    return EventSignature(values[1], values[2], values[3], values[4], values[5]), pos + 1


cdef tuple _key_infos(_Cursor cursor, Py_ssize_t pos):
    """list<MessageSigningKeyInfo> at the list header: each element three optional strings."""
    cdef const unsigned char[::1] v = cursor.view
    cdef Py_ssize_t end = cursor.end
    cdef Py_ssize_t n, size, at
    cdef int fid
    cdef int last
    cdef list values
    if pos >= end or v[pos] != T_STRUCT or cursor.max_depth < 3:
        raise _Unusual
    n = _i32(v, pos + 1, end)
    pos += 5
    if n < 0 or n > cursor.max_container or n > cursor.elements_left or n > end - pos:
        raise _Unusual
    cursor.elements_left -= n
    out = []
    for at in range(n):
        values = [None, None, None, None]
        last = 0
        while True:
            if pos >= end:
                raise _Unusual
            if v[pos] == 0:
                break
            fid = _header_at(v, pos, end) & 0xFFFF
            if v[pos] != T_STRING or fid <= last or fid > 3:
                raise _Unusual
            last = fid
            size = _i32(v, pos + 3, end)
            pos += 7
            if size < 0 or size > end - pos:
                raise _Unusual
            values[fid] = cursor.buf[pos:pos + size].decode("utf-8")
            pos += size
        pos += 1
        out.append(SigningKeyInfo(values[1], values[2], values[3]))
    return out, pos


# --------------------------------------------------------------------------------------------
# Base64, as ``wire.b64decode_strict`` accepts it (the canonical form only)
# --------------------------------------------------------------------------------------------
# By hand: no library decodes and refuses non-canonical input in one pass; with pybase64 the checks
# around the call cost more than the decoding (two calls an event: the event and its signature).

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    const unsigned char *PyUnicode_1BYTE_DATA(object o)
    object PyBytes_FromStringAndSize(const char *v, Py_ssize_t n)
    char *PyBytes_AS_STRING(object o)

cdef unsigned char _B64[256]  # character -> its 6 bits; 255: not in the standard alphabet
cdef const unsigned char *_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
cdef int _at
for _at in range(256):
    _B64[_at] = 255
for _at in range(64):
    _B64[_ALPHABET[_at]] = _at


def b64decode_canonical(text):
    """The bytes of canonical standard base64 (padding optional, partial or complete but never more
    than the length needs, as the SDK takes it; trailing bits zero), or None for anything else,
    which ``b64decode_strict`` then decides with its precise reason. Never bytes where
    ``b64decode_strict`` would refuse."""
    if type(text) is not str or not PyUnicode_IS_ASCII(text):
        return None
    cdef const unsigned char *src = PyUnicode_1BYTE_DATA(text)
    cdef Py_ssize_t n = len(text)
    cdef Py_ssize_t body = n
    while body > 0 and src[body - 1] == 61:  # '='
        body -= 1
    cdef Py_ssize_t pad = n - body
    cdef Py_ssize_t tail = body & 3
    if tail == 1 or pad > (4 - tail) & 3:  # fewer "=" than needed is fine (review 53), more is not
        return None
    out = PyBytes_FromStringAndSize(NULL, body // 4 * 3 + (tail - 1 if tail else 0))
    cdef unsigned char *dst = <unsigned char *>PyBytes_AS_STRING(out)
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t o = 0
    cdef unsigned int a, b, c, d
    while i + 4 <= body:
        a, b, c, d = _B64[src[i]], _B64[src[i + 1]], _B64[src[i + 2]], _B64[src[i + 3]]
        if (a | b | c | d) & 0x80:
            return None
        dst[o] = (a << 2 | b >> 4) & 0xFF
        dst[o + 1] = (b << 4 | c >> 2) & 0xFF
        dst[o + 2] = (c << 6 | d) & 0xFF
        i += 4
        o += 3
    if tail:
        a, b = _B64[src[i]], _B64[src[i + 1]]
        c = _B64[src[i + 2]] if tail == 3 else 0
        if (a | b | c) & 0x80:
            return None
        dst[o] = (a << 2 | b >> 4) & 0xFF
        if tail == 2:
            if b & 0x0F:
                return None  # trailing bits set: two strings would give these bytes
        else:
            dst[o + 1] = (b << 4 | c >> 2) & 0xFF
            if c & 0x03:
                return None
    return out


# --------------------------------------------------------------------------------------------
# Id columns, as ``columns.Ids.append`` stores them (a page of values at a time)
# --------------------------------------------------------------------------------------------

cdef uint64_t _MAX_I64 = 9223372036854775807ULL
cdef uint64_t _SIGN = 9223372036854775808ULL


cdef inline bint _decimal(const unsigned char *s, Py_ssize_t n, uint64_t *number):
    """A canonical decimal of at most 19 ASCII digits (no leading zero but "0"), at most 2**63 - 1."""
    cdef uint64_t value = 0
    cdef Py_ssize_t i
    if n < 1 or n > 19 or (s[0] == 48 and n > 1):
        return False
    for i in range(n):
        if s[i] < 48 or s[i] > 57:
            return False
        value = value * 10 + (s[i] - 48)  # at most 10**19 - 1: no overflow in 64 bits
    if value > _MAX_I64:
        return False
    number[0] = value
    return True


cdef inline int _hex(unsigned char c):
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:  # lowercase only: the canonical form
        return c - 87
    return -1


cdef inline bint _uuid(const unsigned char *s, Py_ssize_t n, uint64_t *high, uint64_t *low):
    """A canonical UUID: 36 characters, lowercase hex, dashes at 8, 13, 18 and 23."""
    cdef uint64_t value = 0
    cdef Py_ssize_t i
    cdef int digit, count = 0
    if n != 36:
        return False
    for i in range(36):
        if i == 8 or i == 13 or i == 18 or i == 23:
            if s[i] != 45:
                return False
            continue
        digit = _hex(s[i])
        if digit < 0:
            return False
        value = value << 4 | <uint64_t>digit
        count += 1
        if count == 16:
            high[0] = value
            value = 0
    low[0] = value
    return True


def id_columns(list values, bint uuids):
    """``Ids.append`` of every value, as the columns it would add: (forms, the ``q`` items of the
    first number column as bytes, those of the second (UUIDs' low halves; empty unless ``uuids``),
    [(position, value) of the values kept as they are]); None when a value is neither None nor a
    ``str`` (``Ids`` then appends them one by one)."""
    cdef Py_ssize_t n = len(values)
    cdef Py_ssize_t i, length
    cdef uint64_t number, high, low
    cdef const unsigned char *s
    forms = PyBytes_FromStringAndSize(NULL, n)
    first = PyBytes_FromStringAndSize(NULL, n * 8)
    second = PyBytes_FromStringAndSize(NULL, n * 8 if uuids else 0)
    cdef unsigned char *form = <unsigned char *>PyBytes_AS_STRING(forms)
    cdef int64_t *a = <int64_t *>PyBytes_AS_STRING(first)
    cdef int64_t *b = <int64_t *>PyBytes_AS_STRING(second)
    others = []
    for i in range(n):
        value = values[i]
        a[i] = 0
        if uuids:
            b[i] = 0
        if value is None:
            form[i] = 0
            continue
        if type(value) is not str:
            return None
        if PyUnicode_IS_ASCII(value):
            s = PyUnicode_1BYTE_DATA(value)
            length = len(value)
            if _decimal(s, length, &number):
                form[i] = 1
                a[i] = <int64_t>number
                continue
            if uuids and _uuid(s, length, &high, &low):
                form[i] = 2
                a[i] = <int64_t>(high ^ _SIGN)  # high - 2**63, as Ids stores it
                b[i] = <int64_t>(low ^ _SIGN)
                continue
        form[i] = 3
        others.append((i, value))
    return forms, first, second, others


# --------------------------------------------------------------------------------------------
# The signed payload of a MessageCreateEvent, as ``payload.build_payload`` builds it
# --------------------------------------------------------------------------------------------

cdef const unsigned char *_CREATE = b"MessageCreateEvent"


cdef inline bint _plain(object text):
    """An ASCII ``str`` without a comma: a payload component copied as it is."""
    if type(text) is not str or not PyUnicode_IS_ASCII(text):
        return False
    cdef const unsigned char *s = PyUnicode_1BYTE_DATA(text)
    cdef Py_ssize_t i
    for i in range(len(text)):
        if s[i] == 44:  # ','
            return False
    return True


cdef inline Py_ssize_t _copy(unsigned char *out, Py_ssize_t at, object text):
    cdef Py_ssize_t n = len(text)
    cdef const unsigned char *s = PyUnicode_1BYTE_DATA(text)
    cdef Py_ssize_t i
    for i in range(n):
        out[at + i] = s[i]
    out[at + n] = 44
    return at + n + 1


def message_create_payload(message_id, sender_id, conversation_id, key_version, contents):
    """``MessageCreateEvent,{message_id},{sender_id}[,{conversation_id}],{key_version},{contents as
    base64 without padding}`` when every text is ASCII without a comma and ``contents`` is bytes;
    else None (``build_payload`` then builds it, or says why it cannot)."""
    if not (_plain(message_id) and _plain(sender_id) and _plain(key_version) and type(contents) is bytes
            and (conversation_id is None or _plain(conversation_id))):
        return None
    cdef const unsigned char *raw = contents
    cdef Py_ssize_t size = len(contents)
    cdef Py_ssize_t encoded = size // 3 * 4 + (size % 3 + 1 if size % 3 else 0)
    cdef Py_ssize_t total = 19 + len(message_id) + 1 + len(sender_id) + 1 + len(key_version) + 1 + encoded
    if conversation_id is not None:
        total += len(conversation_id) + 1
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char *o = <unsigned char *>PyBytes_AS_STRING(out)
    cdef Py_ssize_t at, i
    cdef unsigned int v
    for i in range(18):
        o[i] = _CREATE[i]
    o[18] = 44
    at = _copy(o, 19, message_id)
    at = _copy(o, at, sender_id)
    if conversation_id is not None:
        at = _copy(o, at, conversation_id)
    at = _copy(o, at, key_version)
    i = 0
    while i + 3 <= size:
        v = raw[i] << 16 | raw[i + 1] << 8 | raw[i + 2]
        o[at] = _ALPHABET[v >> 18]
        o[at + 1] = _ALPHABET[v >> 12 & 63]
        o[at + 2] = _ALPHABET[v >> 6 & 63]
        o[at + 3] = _ALPHABET[v & 63]
        at += 4
        i += 3
    if size - i == 1:
        v = raw[i] << 16
        o[at] = _ALPHABET[v >> 18]
        o[at + 1] = _ALPHABET[v >> 12 & 63]
        at += 2
    elif size - i == 2:
        v = raw[i] << 16 | raw[i + 1] << 8
        o[at] = _ALPHABET[v >> 18]
        o[at + 1] = _ALPHABET[v >> 12 & 63]
        o[at + 2] = _ALPHABET[v >> 6 & 63]
        at += 3
    return out


# --------------------------------------------------------------------------------------------
# A raw r||s P-256 signature as DER, as ``keys.raw_signature_to_der`` builds it
# --------------------------------------------------------------------------------------------

cdef const unsigned char *_ORDER = (b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff"
                                    b"\xbc\xe6\xfa\xad\xa7\x17\x9e\x84\xf3\xb9\xca\xc2\xfc\x63\x25\x51")


cdef inline Py_ssize_t _scalar_digits(const unsigned char *scalar):
    """Where the scalar's minimal big-endian digits start (its leading zero bytes skipped), or -1
    when it is not in 1..n-1."""
    cdef Py_ssize_t first = 0
    cdef Py_ssize_t i
    while first < 32 and scalar[first] == 0:
        first += 1
    if first == 32:
        return -1  # zero
    for i in range(32):
        if scalar[i] != _ORDER[i]:
            return first if scalar[i] < _ORDER[i] else -1
    return -1  # equal to the order


cdef inline Py_ssize_t _der_integer(unsigned char *out, Py_ssize_t at, const unsigned char *scalar,
                                    Py_ssize_t first):
    cdef Py_ssize_t n = 32 - first
    cdef bint high = scalar[first] >> 7
    cdef Py_ssize_t i
    out[at] = 2
    out[at + 1] = <unsigned char>(n + high)
    at += 2
    if high:
        out[at] = 0
        at += 1
    for i in range(n):
        out[at + i] = scalar[first + i]
    return at + n


def signature_der(sig):
    """The DER of a 64-byte raw r||s signature with 0 < r, s < n; None for anything else
    (``raw_signature_to_der`` then says why)."""
    if type(sig) is not bytes or len(sig) != 64:
        return None
    cdef const unsigned char *raw = sig
    cdef Py_ssize_t r_first = _scalar_digits(raw)
    cdef Py_ssize_t s_first = _scalar_digits(raw + 32)
    if r_first < 0 or s_first < 0:
        return None
    cdef Py_ssize_t body = (2 + 32 - r_first + (raw[r_first] >> 7)) + (2 + 32 - s_first + (raw[32 + s_first] >> 7))
    out = PyBytes_FromStringAndSize(NULL, 2 + body)
    cdef unsigned char *o = <unsigned char *>PyBytes_AS_STRING(out)
    o[0] = 0x30
    o[1] = <unsigned char>body
    _der_integer(o, _der_integer(o, 2, raw, r_first), raw + 32, s_first)
    return out


# --------------------------------------------------------------------------------------------
# UUIDs back to text, as ``columns.Ids`` gives them (a report's batch of message ids at a time)
# --------------------------------------------------------------------------------------------

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)

cdef const unsigned char *_HEX = b"0123456789abcdef"


def uuid_texts(highs, lows):
    """``columns._uuid_text(high, low)`` of each pair: the canonical lowercase UUID whose halves,
    less 2**63, are ``high`` and ``low`` (Python ints in the int64 range, as ``Ids`` stores them)."""
    cdef Py_ssize_t n = len(highs)
    cdef Py_ssize_t i, at, k
    cdef int64_t high, low
    cdef uint64_t value
    cdef unsigned char *out
    if len(lows) != n:
        raise ValueError("halves of different lengths")
    texts = []
    for i in range(n):
        high = highs[i]
        low = lows[i]
        text = PyUnicode_New(36, 127)
        out = <unsigned char *>PyUnicode_1BYTE_DATA(text)
        at = 35
        for k in range(2):
            value = (<uint64_t>(low if k == 0 else high)) ^ _SIGN
            for _ in range(16):
                if at == 8 or at == 13 or at == 18 or at == 23:
                    out[at] = 45
                    at -= 1
                out[at] = _HEX[value & 15]
                value >>= 4
                at -= 1
        texts.append(text)
    return texts


# --------------------------------------------------------------------------------------------
# The rows of a linear chain whose message id may repeat (``fastchain._repeated_in_chain``)
# --------------------------------------------------------------------------------------------

from libc.stdlib cimport calloc, free, malloc

import os as _os

cdef uint64_t _MIX = int.from_bytes(_os.urandom(8), "little") | 1  # odd, random: no chosen keys collide


def repeated_offsets(const int64_t[::1] keys):
    """The offsets, ascending, of the ``keys`` (the items of an array ``q``) whose value occurs more
    than once among them, as the items of an array ``I`` (bytes). What ``fastchain`` finds with a
    set of Python ints, here in an open-addressing table hashed by a random odd multiplier (keys
    chosen to collide cannot be: the multiplier is this process's), about ten times faster."""
    cdef Py_ssize_t n = keys.shape[0]
    cdef Py_ssize_t i, found = 0
    cdef uint64_t size = 8, mask, slot
    cdef int shift = 61
    while size < <uint64_t>(n + n // 2):  # at most two thirds full: 151 MB of table at 10,000,000 keys
        size <<= 1
        shift -= 1
    mask = size - 1
    cdef int64_t *slots = <int64_t *>malloc(size * sizeof(int64_t))
    cdef unsigned char *counts = <unsigned char *>calloc(size, 1)
    if slots == NULL or counts == NULL:
        free(slots)
        free(counts)
        raise MemoryError()
    try:
        for i in range(n):
            slot = _slot(slots, counts, keys[i], shift, mask)
            if counts[slot] == 0:
                slots[slot] = keys[i]
                counts[slot] = 1
            else:
                if counts[slot] == 1:
                    found += 2
                else:
                    found += 1
                counts[slot] = 2
        out = PyBytes_FromStringAndSize(NULL, found * 4)
        _collect(keys, slots, counts, shift, mask, <uint32_t *>PyBytes_AS_STRING(out))
        return out
    finally:
        free(slots)
        free(counts)


cdef inline uint64_t _slot(int64_t *slots, unsigned char *counts, int64_t key, int shift, uint64_t mask):
    """The slot holding ``key``, or the empty one where it goes (linear probing)."""
    cdef uint64_t slot = ((<uint64_t>key) * _MIX) >> shift
    while counts[slot] and slots[slot] != key:
        slot = (slot + 1) & mask
    return slot


cdef void _collect(const int64_t[::1] keys, int64_t *slots, unsigned char *counts, int shift, uint64_t mask,
                   uint32_t *out):
    cdef Py_ssize_t i, at = 0
    for i in range(keys.shape[0]):
        if counts[_slot(slots, counts, keys[i], shift, mask)] == 2:
            out[at] = <uint32_t>i
            at += 1
