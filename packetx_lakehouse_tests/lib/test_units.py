from packetx_lakehouse.lib.units import format_kb


def test_format_kb_picks_a_readable_unit():
    assert format_kb(512) == "512.0 KB"
    assert format_kb(1536) == "1.50 MB"
    assert format_kb(3 * 1024**3) == "3.00 TB"
    assert format_kb(-2048) == "-2.00 MB"
