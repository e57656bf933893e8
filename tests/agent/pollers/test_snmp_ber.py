"""Our SNMPv1/v2c BER codec checked against pyasn1/pysnmp's encoder and decoder (an independent implementation)."""

from __future__ import annotations

from typing import Any

import pytest
from pyasn1.codec.ber import decoder as asn1_decoder  # type: ignore[import-untyped]  # no type information
from pyasn1.codec.ber import encoder as asn1_encoder
from pysnmp.proto import api, rfc1902, rfc1905

from weibao.agent.pollers.snmp import ber
from weibao.agent.pollers.snmp.values import Missing

P = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]


def pysnmp_response(request_id: int, binds: list[tuple[str, Any]], *, status: int = 0, index: int = 0) -> bytes:
    pdu = P.ResponsePDU()
    P.apiPDU.set_defaults(pdu)
    P.apiPDU.set_request_id(pdu, request_id)
    P.apiPDU.set_error_status(pdu, status)
    P.apiPDU.set_error_index(pdu, index)
    P.apiPDU.set_varbinds(pdu, [(oid, v) for oid, v in binds])
    msg = P.Message()
    P.apiMessage.set_defaults(msg)
    P.apiMessage.set_community(msg, "s3cret")
    P.apiMessage.set_pdu(msg, pdu)
    return bytes(asn1_encoder.encode(msg))


def test_decodes_every_value_type_as_pysnmp_encodes_it() -> None:
    binds = [
        ("1.3.6.1.2.1.1.1.0", rfc1902.OctetString("Linux box")),
        ("1.3.6.1.2.1.1.2.0", rfc1902.ObjectIdentifier("1.3.6.1.4.1.8072.3.2.10")),
        ("1.3.6.1.2.1.1.3.0", rfc1902.TimeTicks(4294967295)),
        ("1.3.6.1.2.1.2.2.1.10.1", rfc1902.Counter32(4294967295)),
        ("1.3.6.1.2.1.31.1.1.1.6.1", rfc1902.Counter64(2**64 - 1)),
        ("1.3.6.1.2.1.2.2.1.5.1", rfc1902.Gauge32(1000000000)),
        ("1.3.6.1.2.1.33.1.2.4.0", rfc1902.Integer32(-1)),
        ("1.3.6.1.2.1.4.20.1.1.127.0.0.1", rfc1902.IpAddress("127.0.0.1")),
        ("1.3.6.1.2.1.2.2.1.6.2", rfc1902.OctetString(hexValue="001122aabbcc")),
        ("1.3.6.1.4.1.2011.5.25.31.1.1.1.1.5.67108873", rfc1902.Integer32(38)),
        ("1.3.6.1.2.1.1.9.0", rfc1905.noSuchObject),
        ("1.3.6.1.2.1.1.10.0", rfc1905.noSuchInstance),
        ("1.3.6.1.9", rfc1905.endOfMibView),
    ]
    data = pysnmp_response(123456789, binds)
    version, community, pdu, rid, status, index, got = ber.decode_response(data)
    assert (version, community, pdu, rid, status, index) == (1, b"s3cret", ber.RESPONSE, 123456789, 0, 0)
    assert [o for o, _ in got] == [tuple(int(x) for x in oid.split(".")) for oid, _ in binds]
    values = [v for _, v in got]
    assert values[:10] == ["Linux box", "1.3.6.1.4.1.8072.3.2.10", 4294967295, 4294967295, 2**64 - 1,
                           1000000000, -1, "127.0.0.1", "00:11:22:aa:bb:cc", 38]
    assert [type(v) for v in values[10:]] == [Missing] * 3
    assert [v.kind for v in values[10:] if isinstance(v, Missing)] == ["noSuchObject", "noSuchInstance",
                                                                         "endOfMibView"]
    assert ber.peek_request_id(data) == 123456789


def test_error_status_is_decoded() -> None:
    data = pysnmp_response(7, [("1.3.6.1.2.1.1.1.0", rfc1902.Null(""))], status=2, index=1)
    _v, _c, _p, _r, status, index, _b = ber.decode_response(data)
    assert (status, index) == (2, 1)


@pytest.mark.parametrize("pdu_type", [ber.GET, ber.GETNEXT, ber.GETBULK])
def test_requests_decode_with_pyasn1(pdu_type: int) -> None:
    oids = [(1, 3, 6, 1, 2, 1, 1, 3, 0), (1, 3, 6, 1, 4, 1, 2011, 5, 25, 31, 1, 1, 1, 1, 5, 67108873),
            (2, 999, 16384)]
    data = ber.encode_request(1, b"pub", pdu_type, 2**31 - 1, oids, max_repetitions=25)
    msg, rest = asn1_decoder.decode(data, asn1Spec=P.Message())
    assert rest == b""
    assert str(P.apiMessage.get_community(msg)) == "pub"
    pdu = P.apiMessage.get_pdu(msg)
    assert int(P.apiPDU.get_request_id(pdu)) == 2**31 - 1
    assert [tuple(o) for o, _ in P.apiPDU.get_varbinds(pdu)] == oids
    if pdu_type == ber.GETBULK:
        assert int(P.apiBulkPDU.get_max_repetitions(pdu)) == 25
        assert int(P.apiBulkPDU.get_non_repeaters(pdu)) == 0


def test_long_messages_use_long_lengths() -> None:
    text = "x" * 1000  # needs a two-byte long-form length
    data = pysnmp_response(1, [("1.3.6.1.2.1.1.1.0", rfc1902.OctetString(text))])
    assert ber.decode_response(data)[6][0][1] == text
    with pytest.raises(ber.BerError):
        ber.decode_response(data[:-10])
    with pytest.raises(ber.BerError):
        ber.decode_response(b"\x02\x01\x00")
