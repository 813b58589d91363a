package apply

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/pglink/pglink/internal/change"
)

// Set-based statements pass a column's values as one array (see bulk.go).
// For the built-in types below, the array goes in binary form: the target
// then reads each element with the type's receive function instead of
// scanning the array's text and running the type's input function on each
// element, a large share of a big INSERT's cost on the target.
//
// An element encoder reads the text pgoutput sent in exactly the form the
// source's output function writes it (ISO dates, "t"/"f", plain decimal
// digits) and returns false for anything else: the whole array then goes
// in text form, and the target's input function reads the value as it
// always did. So the binary form never changes what the target stores.

// elemEncoder appends the binary form of the text value s of one type to
// buf, or reports false when s is not in the form it reads.
type elemEncoder func(buf, s []byte) ([]byte, bool)

// binaryElems are the types whose arrays may go in binary form, by the
// type's OID (fixed for built-in types). Domains, enums and other types
// not listed go in text form.
var binaryElems = map[uint32]elemEncoder{
	16:   encodeBool,
	20:   encodeInt(64),
	21:   encodeInt(16),
	23:   encodeInt(32),
	25:   encodeRaw, // text
	700:  encodeFloat(32),
	701:  encodeFloat(64),
	1042: encodeRaw, // bpchar: the receive function pads and checks as the input function does
	1043: encodeRaw, // varchar
	1082: encodeDate,
	1114: encodeTimestamp(false),
	1184: encodeTimestamp(true),
	2950: encodeUUID,
}

// appendBinaryArray appends the binary form of a one-dimensional array of
// vals, whose elements have type elem, to buf. It reports false (and buf
// is then to be dropped) when a value is not text enc reads.
func appendBinaryArray(buf []byte, vals []change.Value, elem uint32, enc elemEncoder) ([]byte, bool) {
	hasNull := int32(0)
	for _, v := range vals {
		if v.Kind == change.ValueNull {
			hasNull = 1
			break
		}
	}
	buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
	buf = binary.BigEndian.AppendUint32(buf, uint32(hasNull))
	buf = binary.BigEndian.AppendUint32(buf, elem)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(vals)))
	buf = binary.BigEndian.AppendUint32(buf, 1) // lower bound
	for _, v := range vals {
		switch v.Kind {
		case change.ValueNull:
			buf = binary.BigEndian.AppendUint32(buf, math.MaxUint32) // length -1
			continue
		case change.ValueText:
		default:
			return buf, false
		}
		at := len(buf)
		buf = append(buf, 0, 0, 0, 0)
		var ok bool
		if buf, ok = enc(buf, v.Data); !ok {
			return buf, false
		}
		binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
	}
	return buf, true
}

func encodeRaw(buf, s []byte) ([]byte, bool) { return append(buf, s...), true }

func encodeBool(buf, s []byte) ([]byte, bool) {
	switch string(s) {
	case "t":
		return append(buf, 1), true
	case "f":
		return append(buf, 0), true
	}
	return buf, false
}

func encodeInt(bits int) elemEncoder {
	return func(buf, s []byte) ([]byte, bool) {
		if !plainInteger(s) {
			return buf, false
		}
		n, err := strconv.ParseInt(string(s), 10, bits)
		if err != nil {
			return buf, false
		}
		switch bits {
		case 16:
			return binary.BigEndian.AppendUint16(buf, uint16(n)), true
		case 32:
			return binary.BigEndian.AppendUint32(buf, uint32(n)), true
		}
		return binary.BigEndian.AppendUint64(buf, uint64(n)), true
	}
}

// plainInteger: an optional minus and 1 to 19 digits, as the integer
// types' output functions write.
func plainInteger(s []byte) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 19 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// encodeFloat reads what float4out and float8out write: the shortest
// decimal that reads back exactly (both sides round correctly), NaN and
// the infinities.
func encodeFloat(bits int) elemEncoder {
	return func(buf, s []byte) ([]byte, bool) {
		var f float64
		switch string(s) {
		case "NaN":
			f = math.NaN()
		case "Infinity":
			f = math.Inf(1)
		case "-Infinity":
			f = math.Inf(-1)
		default:
			if !plainDecimal(s) {
				return buf, false
			}
			var err error
			if f, err = strconv.ParseFloat(string(s), bits); err != nil || (f == 0 && nonzeroMantissa(s)) {
				return buf, false // out of range: the input function says so
			}
		}
		if bits == 32 {
			return binary.BigEndian.AppendUint32(buf, math.Float32bits(float32(f))), true
		}
		return binary.BigEndian.AppendUint64(buf, math.Float64bits(f)), true
	}
}

// plainDecimal: digits with an optional sign, point and exponent, nothing
// else (no hexadecimal, no underscores, no spaces).
func plainDecimal(s []byte) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	digits := false
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits = true
		case c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E':
		default:
			return false
		}
	}
	return digits
}

// nonzeroMantissa: a digit before the exponent is not 0 (a value that
// reads as 0 underflowed, which the input functions refuse).
func nonzeroMantissa(s []byte) bool {
	for _, c := range s {
		if c == 'e' || c == 'E' {
			break
		}
		if c >= '1' && c <= '9' {
			return true
		}
	}
	return false
}

// encodeUUID reads the 36-character form uuid_out writes.
func encodeUUID(buf, s []byte) ([]byte, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return buf, false
	}
	for i := 0; i < 36; {
		if s[i] == '-' {
			i++
			continue
		}
		hi, ok1 := hexDigit(s[i])
		lo, ok2 := hexDigit(s[i+1])
		if !ok1 || !ok2 {
			return buf, false
		}
		buf = append(buf, hi<<4|lo)
		i += 2
	}
	return buf, true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// encodeDate reads "YYYY-MM-DD" (the ISO date style, years 1 to 9999 AD);
// the binary form is days since 2000-01-01.
func encodeDate(buf, s []byte) ([]byte, bool) {
	if len(s) != 10 {
		return buf, false
	}
	days, ok := isoDate(s)
	if !ok {
		return buf, false
	}
	return binary.BigEndian.AppendUint32(buf, uint32(int32(days))), true
}

// encodeTimestamp reads "YYYY-MM-DD HH:MM:SS[.ffffff]" (the ISO date
// style), followed for timestamptz by the offset "+HH[:MM[:SS]]" the
// source's time zone wrote; the binary form is microseconds since
// 2000-01-01 00:00 (UTC for timestamptz).
func encodeTimestamp(withZone bool) elemEncoder {
	return func(buf, s []byte) ([]byte, bool) {
		if len(s) < 19 || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
			return buf, false
		}
		days, ok1 := isoDate(s[:10])
		h, ok2 := digits(s[11:13])
		m, ok3 := digits(s[14:16])
		sec, ok4 := digits(s[17:19])
		if !ok1 || !ok2 || !ok3 || !ok4 || h > 23 || m > 59 || sec > 59 {
			return buf, false
		}
		rest := s[19:]
		var frac int64
		if len(rest) > 0 && rest[0] == '.' {
			n := 1
			for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
				n++
			}
			if n == 1 || n > 7 {
				return buf, false
			}
			f, _ := digits(rest[1:n])
			for range 7 - n {
				f *= 10
			}
			frac, rest = f, rest[n:]
		}
		var offset int64
		if withZone {
			var ok bool
			if offset, ok = zoneOffset(rest); !ok {
				return buf, false
			}
		} else if len(rest) != 0 {
			return buf, false
		}
		us := ((days*24+h)*60+m)*60 + sec - offset
		return binary.BigEndian.AppendUint64(buf, uint64(us*1_000_000+frac)), true
	}
}

// zoneOffset reads "+HH", "+HH:MM" or "+HH:MM:SS" (or with a minus), in
// seconds east of UTC.
func zoneOffset(s []byte) (int64, bool) {
	if len(s) != 3 && len(s) != 6 && len(s) != 9 || (s[0] != '+' && s[0] != '-') {
		return 0, false
	}
	var off int64
	for i := 1; i < len(s); i += 3 {
		if i > 1 && s[i-1] != ':' {
			return 0, false
		}
		v, ok := digits(s[i : i+2])
		if !ok || (i > 1 && v > 59) {
			return 0, false
		}
		off = off*60 + v
	}
	for i := len(s); i < 9; i += 3 {
		off *= 60
	}
	if s[0] == '-' {
		off = -off
	}
	return off, true
}

// isoDate reads "YYYY-MM-DD", years 1 to 9999 AD, into days since
// 2000-01-01.
func isoDate(s []byte) (int64, bool) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	y, ok1 := digits(s[:4])
	m, ok2 := digits(s[5:7])
	d, ok3 := digits(s[8:10])
	if !ok1 || !ok2 || !ok3 || y < 1 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, false
	}
	return daysFromCivil(y, m, d) - daysFromCivil(2000, 1, 1), true
}

func digits(s []byte) (int64, bool) {
	var v int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, len(s) > 0
}

func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days from 1970-01-01 to y-m-d in the proleptic
// Gregorian calendar, as PostgreSQL's dates are.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
