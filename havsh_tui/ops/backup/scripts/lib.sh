#!/bin/sh
# havsh backup library: Odoo-format zips written and read by POSIX sh.
#
# This runs on the hosts, in a container of the host's own PostgreSQL image (the helper
# containers of `havsh backup` and the scheduler container `havsh-backups`). That image has
# pg_dump and psql of exactly the server's version, but no zip, no unzip and no Python (the
# project's contract promises none on the hosts). So the zip format is written here, with:
#   sh (dash, bash or busybox ash), gzip, tr, cksum, od, dd, head, tail, cat, wc, find, sort,
#   awk (mawk is enough), date, mkdir, mv, rm, tar, and sha256sum (or openssl).
# All of them are in the Debian-based official images (coreutils, findutils, gzip, mawk, tar).
#
# How the pieces are made:
# * dump.sql is stored by default (compression store; deflating 1 GB of SQL takes ~14 s of
#   one core, more than pg_dump + tar of the whole service). When deflated, without perl
#   (below), it is `pg_dump --no-owner` piped into `gzip -1 -n`. A gzip stream is a 10-byte
#   header, a raw deflate stream and an 8-byte trailer (CRC-32, size): the header lands in a
#   private extra field of the zip entry, the deflate data is the entry's data, and the
#   trailer is cut off (dd truncates it) and replaced by a zip64 data descriptor. Where the
#   image has perl with Compress::Raw::Zlib (Debian's postgres images: postgresql-common is
#   perl), perl writes the dump's entry instead (hv_add_stream_perl): zlib deflates ~1.4x
#   faster than gzip at level 1, or the dump is copied as is, and the CRC and the sizes are
#   taken on the way; perl's zlib also gives the CRCs of the filestore files (HV_PERL=0
#   turns all of that off).
# * filestore files are stored (attachments are mostly compressed formats already, and
#   deflate runs at ~25 MB/s here: far too slow). A stored entry still needs the zip CRC-32.
#   cksum(1) computes the POSIX CRC, the same polynomial bit-reflected and with the length
#   appended, at GB/s: cksum of the bit-reversed bytes (tr with a 256-byte map) gives the
#   zip CRC after a little GF(2) arithmetic in sh (hv_crc_from_cksum).
# * the filestore part of the zip is also a valid tar stream: each zip entry's local header
#   carries, in a private extra field, the ustar header of the same file, placed so that the
#   tar headers fall on 512-byte boundaries (a size-0 pax 'x' header fills a gap that is too
#   short). A restore extracts the whole filestore with one `tar -x` instead of one process
#   per file. Zip readers skip the extra fields; the manifest says where the tar stream is.
# * manifest.json is Odoo's (odoo/service/db.py dump_db_manifest) plus a "havsh" key.
# The result is a plain zip (zip64 where sizes need it) that Odoo's database manager and
# Python's zipfile read like one of their own.
LC_ALL=C
export LC_ALL

HV_M32=4294967295
# Sizes, offsets and counts at or above these use zip64 fields (tests lower them).
HV_Z64=${HV_Z64:-4294967295}
HV_Z64N=${HV_Z64N:-65535}
# Filestore files per batch (one cat process writes a batch of headers and files).
HV_BATCH=${HV_BATCH:-200}
HV_EXTRA_ID=30312  # 0x7668, 'h' 'v': havsh's private extra field
# --- generated constants (tests/unit/test_backup_format.py recomputes them) ---
# x^(-8L) mod P for L = 0..8 (the length bytes cksum appends)
HV_INV0=1 HV_INV1=2849236646 HV_INV2=449464555 HV_INV3=2272100856 HV_INV4=3421613274
HV_INV5=4252206295 HV_INV6=2734759924 HV_INV7=1010974697 HV_INV8=3492665716
# x^(8 * v * 16^j) mod P, j = 0..7, v = 1..15 (x^(8 * (2^32 - 1)) = 1 mod P)
HV_N0_1=256 HV_N0_2=65536 HV_N0_3=16777216 HV_N0_4=79764919 HV_N0_5=3524903388 HV_N0_6=30977159 HV_N0_7=3698170551 HV_N0_8=1225615245 HV_N0_9=455609720 HV_N0_10=1331128337 HV_N0_11=1537334474 HV_N0_12=4060129894 HV_N0_13=2156961895 HV_N0_14=4188833774 HV_N0_15=133620486
HV_N1_1=3903084037 HV_N1_2=1975404215 HV_N1_3=2352490664 HV_N1_4=3861023505 HV_N1_5=4179264738 HV_N1_6=491367847 HV_N1_7=973513926 HV_N1_8=1451220459 HV_N1_9=847325915 HV_N1_10=1156019568 HV_N1_11=1783935518 HV_N1_12=3528682822 HV_N1_13=1176860820 HV_N1_14=3402938582 HV_N1_15=1018383345
HV_N2_1=2298356279 HV_N2_2=243629681 HV_N2_3=1094092448 HV_N2_4=1879172134 HV_N2_5=1191321466 HV_N2_6=2129692925 HV_N2_7=1898049928 HV_N2_8=123593394 HV_N2_9=557568533 HV_N2_10=4269119696 HV_N2_11=1033399029 HV_N2_12=3173376710 HV_N2_13=3553589403 HV_N2_14=1118841800 HV_N2_15=1314600666
HV_N3_1=4046094224 HV_N3_2=4038369729 HV_N3_3=2791484711 HV_N3_4=1492413452 HV_N3_5=2275574118 HV_N3_6=3039718991 HV_N3_7=3533673245 HV_N3_8=3275315934 HV_N3_9=1294132833 HV_N3_10=2638506387 HV_N3_11=705730549 HV_N3_12=1463471671 HV_N3_13=2263586807 HV_N3_14=1073805808 HV_N3_15=2014062607
HV_N4_1=2525200268 HV_N4_2=1413494777 HV_N4_3=2902989160 HV_N4_4=599241014 HV_N4_5=1032790308 HV_N4_6=4065918288 HV_N4_7=1124160396 HV_N4_8=3001117608 HV_N4_9=4131804349 HV_N4_10=3774102453 HV_N4_11=969043174 HV_N4_12=576905952 HV_N4_13=1653237807 HV_N4_14=3832180447 HV_N4_15=204431175
HV_N5_1=1918794746 HV_N5_2=3966802781 HV_N5_3=4012988830 HV_N5_4=4151997044 HV_N5_5=862604126 HV_N5_6=3042228814 HV_N5_7=2089747139 HV_N5_8=675665266 HV_N5_9=3043882912 HV_N5_10=3297797484 HV_N5_11=2985422246 HV_N5_12=2797908987 HV_N5_13=38053034 HV_N5_14=306048644 HV_N5_15=303260204
HV_N6_1=55452949 HV_N6_2=2036947266 HV_N6_3=451584380 HV_N6_4=1410117928 HV_N6_5=1598079287 HV_N6_6=3667184742 HV_N6_7=534703033 HV_N6_8=191221795 HV_N6_9=3604243459 HV_N6_10=103996985 HV_N6_11=2086062610 HV_N6_12=71161449 HV_N6_13=2362892932 HV_N6_14=229557125 HV_N6_15=2917879756
HV_N7_1=1010059043 HV_N7_2=2 HV_N7_3=2020118086 HV_N7_4=4 HV_N7_5=4040236172 HV_N7_6=8 HV_N7_7=3848479919 HV_N7_8=16 HV_N7_9=3456586985 HV_N7_10=32 HV_N7_11=2563748965 HV_N7_12=64 HV_N7_13=895382909 HV_N7_14=128 HV_N7_15=1790765818
# tr map that reverses the bits of every byte
HV_BITREV='\000\200\100\300\040\240\140\340\020\220\120\320\060\260\160\360\010\210\110\310\050\250\150\350\030\230\130\330\070\270\170\370\004\204\104\304\044\244\144\344\024\224\124\324\064\264\164\364\014\214\114\314\054\254\154\354\034\234\134\334\074\274\174\374\002\202\102\302\042\242\142\342\022\222\122\322\062\262\162\362\012\212\112\312\052\252\152\352\032\232\132\332\072\272\172\372\006\206\106\306\046\246\146\346\026\226\126\326\066\266\166\366\016\216\116\316\056\256\156\356\036\236\136\336\076\276\176\376\001\201\101\301\041\241\141\341\021\221\121\321\061\261\161\361\011\211\111\311\051\251\151\351\031\231\131\331\071\271\171\371\005\205\105\305\045\245\145\345\025\225\125\325\065\265\165\365\015\215\115\315\055\255\155\355\035\235\135\335\075\275\175\375\003\203\103\303\043\243\143\343\023\223\123\323\063\263\163\363\013\213\113\313\053\253\153\353\033\233\133\333\073\273\173\373\007\207\107\307\047\247\147\347\027\227\127\327\067\267\167\367\017\217\117\317\057\257\157\357\037\237\137\337\077\277\177\377'
# --- end of generated constants ---
hv_mulmod() { # GF(2) product of two 32-bit polynomials mod P (unrolled) -> HV_MM
  local _a _b _r
  _a=$1; _b=$2; _r=$(( ((_b >> 31) & 1) * _a ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 30) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 29) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 28) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 27) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 26) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 25) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 24) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 23) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 22) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 21) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 20) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 19) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 18) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 17) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 16) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 15) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 14) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 13) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 12) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 11) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 10) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 9) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 8) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 7) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 6) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 5) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 4) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 3) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 2) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 1) & 1) * _a) ))
  _r=$(( ((_r << 1) & 4294967295) ^ ((_r >> 31) * 79764919) ^ (((_b >> 0) & 1) * _a) ))
  HV_MM=$_r
}

hv_log() { printf '%s\n' "havsh-backup: $(date -u +%T.%N | cut -c1-12) $*" >&2; }
hv_die() { printf '%s\n' "havsh-backup: ERROR: $*" >&2; exit 1; }

# -- CRC-32 (zip) from cksum ---------------------------------------------------------------
hv_bitrev32() {
  local _v=$1
  _v=$(( ((_v >> 1) & 0x55555555) | ((_v & 0x55555555) << 1) ))
  _v=$(( ((_v >> 2) & 0x33333333) | ((_v & 0x33333333) << 2) ))
  _v=$(( ((_v >> 4) & 0x0F0F0F0F) | ((_v & 0x0F0F0F0F) << 4) ))
  _v=$(( ((_v >> 8) & 0x00FF00FF) | ((_v & 0x00FF00FF) << 8) ))
  HV_BR=$(( (((_v >> 16) & 0xFFFF) | ((_v & 0xFFFF) << 16)) & HV_M32 ))
}

# hv_crc_from_cksum C N: the zip CRC-32 of N bytes whose bit-reversed copy has POSIX cksum C.
# cksum runs the MSB-first CRC (poly P, init 0) over the data and then the length bytes,
# and complements. Undo the length bytes and the complement, add the zip init (all ones,
# shifted over the N bytes), then reflect and complement as zip does.
hv_crc_from_cksum() {
  local _R _n _q _L _m _inv _rd _pw _j _v _t
  _R=$(( $1 ^ HV_M32 )); _n=$2
  _q=0; _L=0; _m=$_n
  while [ "$_m" -gt 0 ]; do
    _q=$(( _q ^ ((_m & 255) << 24) ))
    _q=$(( ((_q << 1) & 4294967295) ^ ((_q >> 31) * 79764919) ))
    _q=$(( ((_q << 1) & 4294967295) ^ ((_q >> 31) * 79764919) ))
    _q=$(( ((_q << 1) & 4294967295) ^ ((_q >> 31) * 79764919) ))
    _q=$(( ((_q << 1) & 4294967295) ^ ((_q >> 31) * 79764919) ))
    _q=$(( ((_q << 1) & 4294967295) ^ ((_q >> 31) * 79764919) ))
    _q=$(( ((_q << 1) & 4294967295) ^ ((_q >> 31) * 79764919) ))
    _q=$(( ((_q << 1) & 4294967295) ^ ((_q >> 31) * 79764919) ))
    _q=$(( ((_q << 1) & 4294967295) ^ ((_q >> 31) * 79764919) ))
    _m=$(( _m >> 8 )); _L=$(( _L + 1 ))
  done
  eval "_inv=\$HV_INV$_L"
  hv_mulmod $(( _R ^ _q )) "$_inv"; _rd=$HV_MM
  # x^(8n) has period 2^32 - 1 in n: reduce, then one product per non-zero nibble.
  _pw=$HV_M32; _j=0; _m=$(( _n % 4294967295 ))
  while [ "$_m" -gt 0 ]; do
    _v=$(( _m & 15 ))
    if [ "$_v" -ne 0 ]; then
      eval "_t=\$HV_N${_j}_$_v"
      hv_mulmod "$_pw" "$_t"; _pw=$HV_MM
    fi
    _m=$(( _m >> 4 )); _j=$(( _j + 1 ))
  done
  hv_bitrev32 $(( _pw ^ _rd ))
  HV_CRC=$(( HV_BR ^ HV_M32 ))
}

# hv_crc_file FILE: HV_CRC and HV_SIZE of a file (1 if it cannot be read).
hv_crc_file() {
  [ -f "$1" ] && [ -r "$1" ] || return 1
  # shellcheck disable=SC2046
  set -- $(tr '\000-\377' "$HV_BITREV" < "$1" | cksum)
  [ $# -ge 2 ] || return 1
  HV_SIZE=$2
  hv_crc_from_cksum "$1" "$2"
}

# -- CRC-32 with perl, when the image has it --------------------------------------------------
# Debian's postgres images have perl and its Compress::Raw::Zlib (postgresql-common is perl):
# zlib's CRC-32 in C, at GB/s, one process for any number of files. It is only a shortcut:
# without it (HV_PERL=0 forces that), the cksum route above gives the same CRCs.
hv_perl_ok() {
  if [ -z "${HV_PERLOK:-}" ]; then
    HV_PERLOK=0
    if [ "${HV_PERL:-1}" = 1 ] && perl -MCompress::Raw::Zlib -e 1 > /dev/null 2>&1; then
      HV_PERLOK=1
    fi
  fi
  [ "$HV_PERLOK" = 1 ]
}
# Lines "KEY PATH" on stdin -> "KEY CRC SIZE" on stdout, "KEY - -" for a file it cannot read.
HV_PERL_CRCS='use Compress::Raw::Zlib;
while (my $l = <STDIN>) {
  chomp $l; my ($k, $f) = split(/ /, $l, 2); my ($c, $n, $b, $r) = (0, 0);
  if (open(my $h, "<:raw", $f)) {
    while ($r = sysread($h, $b, 1048576)) { $c = Compress::Raw::Zlib::crc32($b, $c); $n += $r }
    close $h;
    if (defined $r) { print "$k $c $n\n"; next }
  }
  print "$k - -\n";
}'
# stdin -> "CRC SIZE"
HV_PERL_CRC_STREAM='use Compress::Raw::Zlib; binmode STDIN; my ($c, $n, $b, $r) = (0, 0);
while ($r = sysread(STDIN, $b, 1048576)) { $c = Compress::Raw::Zlib::crc32($b, $c); $n += $r }
defined $r or exit 1; print "$c $n\n";'

# -- bytes ------------------------------------------------------------------------------------
# The bytes of a header are built as printf octal escapes in HV_B, with their count and sum
# in HV_POS and HV_SUM (a tar header's checksum is the sum of its bytes). When HV_POS reaches
# HV_MARK, HV_MARKSUM keeps the sum of the bytes before it.
hv_b() {
  if [ "$HV_POS" -eq "$HV_MARK" ]; then HV_MARKSUM=$HV_SUM; fi
  HV_B="$HV_B\\$(( ($1 >> 6) & 7 ))$(( ($1 >> 3) & 7 ))$(( $1 & 7 ))"
  HV_POS=$(( HV_POS + 1 )); HV_SUM=$(( HV_SUM + $1 ))
}
hv_le16() { hv_b $(( $1 & 255 )); hv_b $(( ($1 >> 8) & 255 )); }
hv_le32() { hv_le16 $(( $1 & 65535 )); hv_le16 $(( ($1 >> 16) & 65535 )); }
hv_le64() { hv_le32 $(( $1 & HV_M32 )); hv_le32 $(( ($1 >> 32) & HV_M32 )); }
hv_reset() { HV_B=; HV_POS=0; HV_SUM=0; HV_MARK=-1; HV_MARKSUM=0; }

# hv_zeros N: N zero bytes (a run of \000, in at most 10 appends).
HV_Z1='\000'
HV_Z2="$HV_Z1$HV_Z1"; HV_Z4="$HV_Z2$HV_Z2"; HV_Z8="$HV_Z4$HV_Z4"; HV_Z16="$HV_Z8$HV_Z8"
HV_Z32="$HV_Z16$HV_Z16"; HV_Z64B="$HV_Z32$HV_Z32"; HV_Z128="$HV_Z64B$HV_Z64B"
HV_Z256="$HV_Z128$HV_Z128"; HV_Z512="$HV_Z256$HV_Z256"
hv_zeros() {
  local _k=$1
  if [ "$HV_MARK" -ge "$HV_POS" ] && [ "$HV_MARK" -lt $(( HV_POS + _k )) ]; then
    HV_MARKSUM=$HV_SUM
  fi
  HV_POS=$(( HV_POS + _k ))
  while [ "$_k" -ge 512 ]; do HV_B="$HV_B$HV_Z512"; _k=$(( _k - 512 )); done
  [ $(( _k & 256 )) -ne 0 ] && HV_B="$HV_B$HV_Z256"
  [ $(( _k & 128 )) -ne 0 ] && HV_B="$HV_B$HV_Z128"
  [ $(( _k & 64 )) -ne 0 ] && HV_B="$HV_B$HV_Z64B"
  [ $(( _k & 32 )) -ne 0 ] && HV_B="$HV_B$HV_Z32"
  [ $(( _k & 16 )) -ne 0 ] && HV_B="$HV_B$HV_Z16"
  [ $(( _k & 8 )) -ne 0 ] && HV_B="$HV_B$HV_Z8"
  [ $(( _k & 4 )) -ne 0 ] && HV_B="$HV_B$HV_Z4"
  [ $(( _k & 2 )) -ne 0 ] && HV_B="$HV_B$HV_Z2"
  [ $(( _k & 1 )) -ne 0 ] && HV_B="$HV_B$HV_Z1"
  return 0
}

# hv_str S: the bytes of S, which must match hv_safe_name's charset.
hv_str() {
  local _s=$1 _rest _c
  while [ -n "$_s" ]; do
    _rest=${_s#?}; _c=${_s%"$_rest"}; _s=$_rest
    case $_c in
      [a-z]|[A-Z]|[0-9]|.|_|-|/) ;;
      *) hv_die "unexpected character in a name" ;;
    esac
    case $_c in
      a) hv_b 97;; b) hv_b 98;; c) hv_b 99;; d) hv_b 100;; e) hv_b 101;; f) hv_b 102;;
      g) hv_b 103;; h) hv_b 104;; i) hv_b 105;; j) hv_b 106;; k) hv_b 107;; l) hv_b 108;;
      m) hv_b 109;; n) hv_b 110;; o) hv_b 111;; p) hv_b 112;; q) hv_b 113;; r) hv_b 114;;
      s) hv_b 115;; t) hv_b 116;; u) hv_b 117;; v) hv_b 118;; w) hv_b 119;; x) hv_b 120;;
      y) hv_b 121;; z) hv_b 122;;
      0) hv_b 48;; 1) hv_b 49;; 2) hv_b 50;; 3) hv_b 51;; 4) hv_b 52;; 5) hv_b 53;;
      6) hv_b 54;; 7) hv_b 55;; 8) hv_b 56;; 9) hv_b 57;;
      .) hv_b 46;; _) hv_b 95;; -) hv_b 45;; /) hv_b 47;;
      A) hv_b 65;; B) hv_b 66;; C) hv_b 67;; D) hv_b 68;; E) hv_b 69;; F) hv_b 70;;
      G) hv_b 71;; H) hv_b 72;; I) hv_b 73;; J) hv_b 74;; K) hv_b 75;; L) hv_b 76;;
      M) hv_b 77;; N) hv_b 78;; O) hv_b 79;; P) hv_b 80;; Q) hv_b 81;; R) hv_b 82;;
      S) hv_b 83;; T) hv_b 84;; U) hv_b 85;; V) hv_b 86;; W) hv_b 87;; X) hv_b 88;;
      Y) hv_b 89;; Z) hv_b 90;;
    esac
  done
}

# A name havsh writes or extracts: relative, [A-Za-z0-9._/-], no empty, . or .. component.
hv_safe_name() {
  case $1 in
    ''|/*|*//*|*/|*[!A-Za-z0-9._/-]*) return 1 ;;
    .|..|./*|../*|*/.|*/..|*/./*|*/../*) return 1 ;;
  esac
  return 0
}

# hv_octal N WIDTH: HV_OCT = N in octal, zero-padded to WIDTH digits; HV_OCTSUM = its ASCII sum.
hv_octal() {
  local _v _w _d
  _v=$1; _w=$2; HV_OCT=; HV_OCTSUM=0
  while [ "$_w" -gt 0 ]; do
    _d=$(( _v & 7 )); HV_OCT="$_d$HV_OCT"; HV_OCTSUM=$(( HV_OCTSUM + 48 + _d ))
    _v=$(( _v >> 3 )); _w=$(( _w - 1 ))
  done
  [ "$_v" -eq 0 ] || return 1
}

# hv_tar_block K0 UNCSUM TYPE NAME SIZE: append the bytes K0..511 of a ustar header whose
# bytes 0..K0-1 (UNCSUM is their sum) were emitted already, as part of something else.
# K0 must be at most 100 (only the name field may be taken) and NAME empty when K0 > 0.
hv_tar_block() {
  local _k0 _unc _type _name _size _sum0 _pos0 _nsum _save_b _save_pos _save_sum _nb _nlen
  local _soct _ssum _tsum _chk _coct
  _k0=$1; _unc=$2; _type=$3; _name=$4; _size=$5
  _sum0=$HV_SUM; _pos0=$HV_POS
  # The checksum comes after the name, mode, uid, gid, size and mtime: sum them first.
  _nsum=0
  if [ -n "$_name" ]; then
    _save_b=$HV_B; _save_pos=$HV_POS; _save_sum=$HV_SUM
    HV_B=; hv_str "$_name"; _nb=$HV_B; _nsum=$(( HV_SUM - _save_sum )); _nlen=$(( HV_POS - _save_pos ))
    HV_B=$_save_b; HV_POS=$_save_pos; HV_SUM=$_save_sum
  else
    _nb=; _nlen=0
  fi
  hv_octal "$_size" 11 || hv_die "file too large for ustar"; _soct=$HV_OCT; _ssum=$HV_OCTSUM
  _tsum=48; [ "$_type" = x ] && _tsum=120
  # mode 0000644, uid, gid, devmajor, devminor 0000000, "ustar\0", "00", 8 spaces
  _chk=$(( _unc + _nsum + 350 + 336 + 336 + _ssum + HV_MTSUM + 256 + _tsum + 559 + 96 + 336 + 336 ))
  hv_octal "$_chk" 6
  _coct=$HV_OCT
  # name[100]
  HV_B="$HV_B$_nb"; HV_POS=$(( HV_POS + _nlen )); HV_SUM=$(( HV_SUM + _nsum ))
  hv_zeros $(( 100 - _k0 - _nlen ))
  HV_B="${HV_B}0000644\\0000000000\\0000000000\\000${_soct}\\000${HV_MTOCT}\\000${_coct}\\000 "
  if [ "$_type" = x ]; then HV_B="${HV_B}x"; else HV_B="${HV_B}0"; fi
  HV_POS=$(( HV_POS + 57 ))
  hv_zeros 100
  HV_B="${HV_B}ustar\\00000"; HV_POS=$(( HV_POS + 8 ))
  hv_zeros 64
  HV_B="${HV_B}0000000\\0000000000\\000"; HV_POS=$(( HV_POS + 16 ))
  hv_zeros 167
  HV_SUM=$(( _sum0 + _chk - _unc ))
  [ $(( HV_POS - _pos0 )) -eq $(( 512 - _k0 )) ] || hv_die "internal: tar block length"
}

# hv_kill_tree PID: signal PID and every process below it (from /proc: the image has no ps).
hv_kill_tree() {
  local _root=$1 _p _st _kids=
  for _p in /proc/[0-9]*; do
    read -r _st 2> /dev/null < "$_p/stat" || continue
    _st=${_st##*) }
    # shellcheck disable=SC2086
    set -- $_st
    [ "${2:-}" = "$_root" ] && _kids="$_kids ${_p#/proc/}"
  done
  kill "$_root" 2> /dev/null
  for _p in $_kids; do hv_kill_tree "$_p"; done
  return 0
}

# -- writing a zip ----------------------------------------------------------------------------
# zip_begin ZIP TMPDIR: start a new zip file (truncated); entries are listed in TMPDIR/cd.
zip_begin() {
  HV_ZIP=$1; HV_TMP=$2; HV_OFF=0; HV_CD=$HV_TMP/cd; HV_T0=-1; HV_TLEN=0; HV_TFILES=0
  HV_PROGRESS=0; HV_FILES=0; HV_FSBYTES=0
  hv_reset
  : > "$HV_ZIP" || hv_die "cannot create $HV_ZIP"
  : > "$HV_CD"
  # shellcheck disable=SC2046
  set -- $(date -u '+%Y %m %d %H %M %S %s')
  HV_DOSDATE=$(( (($1 - 1980) << 9) | (${2#0} << 5) | ${3#0} ))
  HV_DOSTIME=$(( (${4#0} << 11) | (${5#0} << 5) | (${6#0} / 2) ))
  HV_MTIME=$7
  hv_octal "$HV_MTIME" 11; HV_MTOCT=$HV_OCT; HV_MTSUM=$HV_OCTSUM
  # A ustar header's byte sum without its name and size digits: mode, uid, gid,
  # mtime, 8 spaces (the checksum field), typeflag '0', "ustar", "00", devmajor, devminor.
  HV_TARCONST=$(( 350 + 336 + 336 + HV_MTSUM + 256 + 48 + 559 + 96 + 336 + 336 ))
  # The start of a stored, non-zip64 local header: signature, version 20, flags, method,
  # time, date.
  HV_B=; hv_e32 67324752; hv_e16 20; hv_e16 0; hv_e16 0; hv_e16 "$HV_DOSTIME"
  hv_e16 "$HV_DOSDATE"; HV_LHSTORED=$HV_B
  HV_B=; hv_e16 "$HV_EXTRA_ID"; HV_XID=$HV_B
}

hv_cd_add() { # crc csize usize offset method flags name
  printf '%s %s %s %s %s %s %s\n' "$@" >> "$HV_CD" || hv_die "cannot write $HV_CD"
}

# hv_write_failed WHAT: die with the reason (a full disk says how much is left).
hv_write_failed() {
  local _free
  _free=$(df -Pk "$(dirname "$HV_ZIP")" 2>/dev/null | awk 'NR == 2 {printf "%.0f", $4 * 1024}')
  hv_die "writing $1 to $HV_ZIP failed (${_free:-?} bytes free on that disk): no space left?"
}

# stdin deflated (raw, zlib level HV_LEVEL; HV_LEVEL=store: copied as is) to stdout;
# "CRC SIZE CSIZE" to the file $ARGV[0].
HV_PERL_DEFLATE='use Compress::Raw::Zlib; binmode STDIN; binmode STDOUT;
my $store = ($ENV{HV_LEVEL} || "") eq "store";
my ($d, $s) = Compress::Raw::Zlib::Deflate->new(-Level => ($store ? 1 : $ENV{HV_LEVEL} || 1),
  -WindowBits => -15, -Bufsize => 1048576, -AppendOutput => 0);
$s == Z_OK or exit 2;
my ($c, $n, $m, $b, $o, $r) = (0, 0, 0);
while ($r = sysread(STDIN, $b, 1048576)) {
  $c = Compress::Raw::Zlib::crc32($b, $c); $n += $r;
  if ($store) { print $b or exit 3; $m += $r; next }
  $d->deflate($b, $o) == Z_OK or exit 2;
  if (length $o) { print $o or exit 3; $m += length $o }
}
defined $r or exit 4;
if (!$store) { $d->flush($o) == Z_OK or exit 2; print $o or exit 3; $m += length $o }
close STDOUT or exit 3;
open(my $f, ">", $ARGV[0]) or exit 4; print $f "$c $n $m\n"; close $f or exit 4;'

# zip_add_stream NAME deflate|store COMMAND...: an entry from a command's stdout.
zip_add_stream() {
  local _name _how _n _head _start _bg _gz _st _end _crc _isize _usize _csize _ck _lho
  _name=$1; _how=$2; shift 2
  hv_safe_name "$_name" || hv_die "bad entry name $_name"
  if hv_perl_ok; then
    hv_add_stream_perl "$_name" "$_how" "$@"
    return
  fi
  _n=${#_name}
  hv_reset
  hv_le32 67324752   # PK\3\4
  hv_le16 45
  if [ "$_how" = deflate ]; then hv_le16 8; hv_le16 8; else hv_le16 0; hv_le16 0; fi
  hv_le16 "$HV_DOSTIME"; hv_le16 "$HV_DOSDATE"
  hv_le32 0; hv_le32 "$HV_M32"; hv_le32 "$HV_M32"
  hv_le16 "$_n"
  if [ "$_how" = deflate ]; then hv_le16 34; else hv_le16 20; fi
  _head=$HV_B
  hv_reset
  hv_le16 1; hv_le16 16; hv_le64 0; hv_le64 0
  [ "$_how" = deflate ] && { hv_le16 "$HV_EXTRA_ID"; hv_le16 10; }
  { printf "$_head"; printf '%s' "$_name"; printf "$HV_B"; } >> "$HV_ZIP" || hv_write_failed "$_name"
  _start=$(( HV_OFF + 30 + _n + 20 ))
  rm -f "$HV_TMP/fifo" "$HV_TMP/count" "$HV_TMP/status"
  mkfifo "$HV_TMP/fifo" || hv_die "mkfifo failed"
  if [ "$_how" = deflate ]; then
    _start=$(( _start + 14 ))
    wc -c < "$HV_TMP/fifo" > "$HV_TMP/count" &
    _bg=$!
    { "$@"; echo $? > "$HV_TMP/status"; } | tee "$HV_TMP/fifo" | gzip -"${HV_LEVEL:-1}" -n >> "$HV_ZIP"
    _gz=$?
  else
    if hv_perl_ok; then
      perl -e "$HV_PERL_CRC_STREAM" < "$HV_TMP/fifo" > "$HV_TMP/count" &
    else
      tr '\000-\377' "$HV_BITREV" < "$HV_TMP/fifo" | cksum > "$HV_TMP/count" &
    fi
    _bg=$!
    { "$@"; echo $? > "$HV_TMP/status"; } | tee "$HV_TMP/fifo" >> "$HV_ZIP"
    _gz=$?
  fi
  wait "$_bg"
  _st=$(cat "$HV_TMP/status" 2>/dev/null)
  # The writer first: when the disk fills, it fails, and the producer dies of SIGPIPE (141).
  [ "$_gz" -eq 0 ] || hv_write_failed "$_name"
  [ "${_st:-1}" -eq 0 ] || hv_die "$1 exited ${_st:-?} while writing $_name"
  _end=$(wc -c < "$HV_ZIP")
  if [ "$_how" = deflate ]; then
    # shellcheck disable=SC2046
    set -- $(tail -c 8 "$HV_ZIP" | od -An -tu1 -v)
    [ $# -eq 8 ] || hv_die "cannot read the gzip trailer"
    _crc=$(( $1 | ($2 << 8) | ($3 << 16) | ($4 << 24) ))
    _isize=$(( $5 | ($6 << 8) | ($7 << 16) | ($8 << 24) ))
    read -r _usize < "$HV_TMP/count"
    [ $(( _usize & HV_M32 )) -eq "$_isize" ] || hv_die "size mismatch in $_name ($_usize / $_isize)"
    _csize=$(( _end - 8 - _start ))
    hv_reset
    hv_le32 134695760   # PK\7\8
    hv_le32 "$_crc"; hv_le64 "$_csize"; hv_le64 "$_usize"
    # dd without conv=notrunc truncates at the seek point: the trailer goes, the
    # descriptor takes its place.
    printf "$HV_B" | dd of="$HV_ZIP" bs=1 seek=$(( _end - 8 )) 2>/dev/null || hv_write_failed "$_name"
    HV_OFF=$(( _end - 8 + 24 ))
    hv_cd_add "$_crc" "$_csize" "$_usize" $(( _start - 30 - _n - 34 )) 8 8 "$_name"
  else
    read -r _ck _usize < "$HV_TMP/count"
    [ $(( _end - _start )) -eq "${_usize:--1}" ] || hv_die "size mismatch in $_name"
    if hv_perl_ok; then HV_CRC=$_ck; else hv_crc_from_cksum "$_ck" "$_usize"; fi
    _lho=$(( _start - 30 - _n - 20 ))
    # Patch the CRC and the zip64 sizes into the local header.
    hv_reset; hv_le32 "$HV_CRC"
    printf "$HV_B" | dd of="$HV_ZIP" bs=1 seek=$(( _lho + 14 )) conv=notrunc 2>/dev/null \
      || hv_write_failed "$_name"
    hv_reset; hv_le64 "$_usize"; hv_le64 "$_usize"
    printf "$HV_B" | dd of="$HV_ZIP" bs=1 seek=$(( _lho + 30 + _n + 4 )) conv=notrunc 2>/dev/null \
      || hv_write_failed "$_name"
    HV_OFF=$_end
    hv_cd_add "$HV_CRC" "$_usize" "$_usize" "$_lho" 0 0 "$_name"
  fi
  rm -f "$HV_TMP/fifo"
}

# hv_add_stream_perl NAME deflate|store COMMAND...: an entry through perl, which takes the
# CRC and the sizes on the way, deflating with zlib (level HV_LEVEL, 1 by default: the
# fastest) or not; a zip64 data descriptor after the data.
hv_add_stream_perl() {
  local _name _how _n _start _st _gz _end _crc _usize _csize _lho _method _level
  _name=$1; _how=$2; shift 2
  _n=${#_name}
  _method=8; _level=${HV_LEVEL:-1}
  [ "$_how" = store ] && { _method=0; _level=store; }
  hv_reset
  hv_le32 67324752; hv_le16 45; hv_le16 8; hv_le16 "$_method"   # PK\3\4, 4.5, descriptor
  hv_le16 "$HV_DOSTIME"; hv_le16 "$HV_DOSDATE"
  hv_le32 0; hv_le32 "$HV_M32"; hv_le32 "$HV_M32"
  hv_le16 "$_n"; hv_le16 20
  { printf "$HV_B"; printf '%s' "$_name"; }  >> "$HV_ZIP" || hv_write_failed "$_name"
  hv_reset; hv_le16 1; hv_le16 16; hv_le64 0; hv_le64 0
  printf "$HV_B" >> "$HV_ZIP" || hv_write_failed "$_name"
  _lho=$HV_OFF
  _start=$(( HV_OFF + 30 + _n + 20 ))
  rm -f "$HV_TMP/count" "$HV_TMP/status"
  { "$@"; echo $? > "$HV_TMP/status"; } | HV_LEVEL=$_level perl -e "$HV_PERL_DEFLATE" "$HV_TMP/count" >> "$HV_ZIP"
  _gz=$?
  _st=$(cat "$HV_TMP/status" 2>/dev/null)
  # The writer first: when the disk fills, it fails, and the producer dies of SIGPIPE (141).
  [ "$_gz" -eq 0 ] || hv_write_failed "$_name"
  [ "${_st:-1}" -eq 0 ] || hv_die "$1 exited ${_st:-?} while writing $_name"
  read -r _crc _usize _csize < "$HV_TMP/count" || hv_die "the deflate of $_name said nothing"
  _end=$(wc -c < "$HV_ZIP")
  [ $(( _end - _start )) -eq "${_csize:--1}" ] || hv_write_failed "$_name"
  hv_reset
  hv_le32 134695760   # PK\7\8
  hv_le32 "$_crc"; hv_le64 "$_csize"; hv_le64 "$_usize"
  printf "$HV_B" >> "$HV_ZIP" || hv_write_failed "$_name"
  HV_OFF=$(( _end + 24 ))
  hv_cd_add "$_crc" "$_csize" "$_usize" "$_lho" "$_method" 8 "$_name"
}

# hv_local_header NAME CRC SIZE EXTRA_PAYLOAD_LEN: a stored entry's local header in HV_B,
# with its zip64 field if needed, and the id/length of havsh's extra field when
# EXTRA_PAYLOAD_LEN >= 0 (the caller appends the payload).
hv_local_header() {
  local _hn _z _ext
  _hn=${#1}; _z=0; [ "$3" -ge "$HV_Z64" ] && _z=1
  _ext=0; [ "$4" -ge 0 ] && _ext=$(( 4 + $4 )); [ "$_z" -eq 1 ] && _ext=$(( _ext + 20 ))
  hv_le32 67324752
  if [ "$_z" -eq 1 ]; then hv_le16 45; else hv_le16 20; fi
  hv_le16 0; hv_le16 0; hv_le16 "$HV_DOSTIME"; hv_le16 "$HV_DOSDATE"; hv_le32 "$2"
  if [ "$_z" -eq 1 ]; then hv_le32 "$HV_M32"; hv_le32 "$HV_M32"; else hv_le32 "$3"; hv_le32 "$3"; fi
  hv_le16 "$_hn"; hv_le16 "$_ext"
  hv_str "$1"
  if [ "$_z" -eq 1 ]; then hv_le16 1; hv_le16 16; hv_le64 "$3"; hv_le64 "$3"; fi
  if [ "$4" -ge 0 ]; then hv_le16 "$HV_EXTRA_ID"; hv_le16 "$4"; fi
}

# zip_add_file NAME FILE: a stored entry (small files: the manifest).
zip_add_file() {
  hv_crc_file "$2" || hv_die "cannot read $2"
  hv_reset; hv_local_header "$1" "$HV_CRC" "$HV_SIZE" -1
  { printf "$HV_B"; head -c "$HV_SIZE" "$2"; } >> "$HV_ZIP" || hv_write_failed "$1"
  hv_cd_add "$HV_CRC" "$HV_SIZE" "$HV_SIZE" "$HV_OFF" 0 0 "$1"
  HV_OFF=$(( HV_OFF + HV_POS + HV_SIZE ))
}

# Fast little-endian appenders (no byte count or sum): for headers on the hot path.
hv_e16() {
  HV_B="$HV_B\\$(( ($1 >> 6) & 3 ))$(( ($1 >> 3) & 7 ))$(( $1 & 7 ))\\$(( ($1 >> 14) & 3 ))$(( ($1 >> 11) & 7 ))$(( ($1 >> 8) & 7 ))"
}
hv_e32() {
  HV_B="$HV_B\\$(( ($1 >> 6) & 3 ))$(( ($1 >> 3) & 7 ))$(( $1 & 7 ))\\$(( ($1 >> 14) & 3 ))$(( ($1 >> 11) & 7 ))$(( ($1 >> 8) & 7 ))\\$(( ($1 >> 22) & 3 ))$(( ($1 >> 19) & 7 ))$(( ($1 >> 16) & 7 ))\\$(( ($1 >> 30) & 3 ))$(( ($1 >> 27) & 7 ))$(( ($1 >> 24) & 7 ))"
}

# hv_tar_fast NAME NSUM SIZE: append a whole ustar header for a regular file; NSUM is the
# byte sum of NAME (from the listing).
hv_tar_fast() {
  local _chk
  hv_octal "$3" 11 || hv_die "file too large for ustar"
  _chk=$(( $2 + HV_TARCONST + HV_OCTSUM ))
  HV_B="$HV_B$1"
  hv_zeros $(( 100 - ${#1} ))
  local _soct=$HV_OCT
  hv_octal "$_chk" 6
  HV_B="${HV_B}0000644\\0000000000\\0000000000\\000${_soct}\\000${HV_MTOCT}\\000${HV_OCT}\\000 0"
  HV_B="$HV_B${HV_Z64B}${HV_Z32}${HV_Z4}ustar\\00000${HV_Z64B}"
  HV_B="${HV_B}0000000\\0000000000\\000${HV_Z128}${HV_Z32}${HV_Z4}${HV_Z2}${HV_Z1}"
}

# hv_fs_header NAME REL NSUM CRC SIZE: the local header of one filestore entry, tar header
# included (see the top of this file), in HV_B; HV_POS is its length. NSUM: bytes sum of REL.
hv_fs_header() {
  local _fname=$1 _rel=$2 _nsum=$3 _fcrc=$4 _fsize=$5 _A _p
  _A=$(( 34 + ${#_fname} ))
  if [ "$HV_T0" -lt 0 ]; then
    _p=$_A
  else
    _p=$(( (512 - (HV_OFF - HV_T0) % 512) % 512 ))
  fi
  if [ "$_p" -ge "$_A" ]; then
    HV_B=$HV_LHSTORED
    hv_e32 "$_fcrc"; hv_e32 "$_fsize"; hv_e32 "$_fsize"; hv_e16 ${#_fname}; hv_e16 $(( _p - _A + 516 ))
    HV_B="$HV_B$_fname$HV_XID"; hv_e16 $(( _p - _A + 512 ))
    hv_zeros $(( _p - _A ))
    [ "$HV_T0" -lt 0 ] && HV_T0=$(( HV_OFF + _p ))
    hv_tar_fast "$_rel" "$_nsum" "$_fsize"
    HV_POS=$(( _p + 512 ))
  else
    # The block at the tar boundary begins inside this header: make it a size-0 pax
    # header (its name field, where the zip bytes fall, is ignored). Built byte by byte,
    # since its checksum needs the sum of the header bytes it overlaps.
    hv_reset
    HV_MARK=$_p
    hv_local_header "$_fname" "$_fcrc" "$_fsize" $(( _p - _A + 1024 ))
    hv_tar_block $(( _A - _p )) $(( HV_SUM - HV_MARKSUM )) x "" 0
    hv_tar_fast "$_rel" "$_nsum" "$_fsize"
    HV_POS=$(( _p + 1024 ))
  fi
}

# zip_add_filestore DIR [CACHE]: every file under DIR as filestore/<path>. Files that vanish
# while this runs (Odoo's garbage collector) are skipped. CACHE ("path size mtime crc" lines)
# gives the CRCs of files seen by an earlier backup: Odoo never rewrites a filestore file
# (its name is its content's sha1), so only new files are read twice. HV_TMP/crc.new gets
# the lines of this run, for the caller to keep once the backup is whole.
zip_add_filestore() {
  local _s _t _n _c _r _f _k _big _ck _cs _x _bb
  HVF_DIR=$1; HV_FILES=0; HV_FSBYTES=0
  : > "$HV_TMP/crc.new"
  [ -d "$HVF_DIR" ] || return 0
  # "size mtime namesum cachedcrc path", the sum being the byte sum of the path (for the tar
  # checksums), the cached CRC "-" when unknown.
  (cd "$HVF_DIR" && find . -type f -printf '%s %T@ %P\n') | sort -k3 | awk -v cache="${2:-}" '
    BEGIN { for (c = 32; c < 127; c++) ord[sprintf("%c", c)] = c
            if (cache != "") while ((getline line < cache) > 0) {
              split(line, f, " "); known[f[1] " " f[2] " " f[3]] = f[4] } }
    { p = $3; s = 0
      for (i = 1; i <= length(p); i++) s += ord[substr(p, i, 1)]
      c = known[p " " $1 " " $2]; if (c == "") c = "-"
      print $1, $2, s, c, p }' > "$HV_TMP/fs.list" || hv_die "cannot list $HVF_DIR"
  # The tar view needs short names and sizes below 8 GiB (and no zip64).
  HVF_TAR=1
  while read -r _s _t _n _c _r; do
    hv_safe_name "$_r" || continue
    if [ ${#_r} -gt 56 ] || [ "$_s" -ge "$HV_Z64" ] || [ "$_s" -ge 8589934591 ]; then
      HVF_TAR=0; break
    fi
  done < "$HV_TMP/fs.list"
  # With perl, the CRCs of all the files not in the cache in one process, as if cached.
  if hv_perl_ok; then
    awk '$4 == "-" { print NR, $5 }' "$HV_TMP/fs.list" | (cd "$HVF_DIR" && perl -e "$HV_PERL_CRCS") \
      > "$HV_TMP/crc.perl" || hv_die "cannot read the files of $HVF_DIR"
    awk -v crcs="$HV_TMP/crc.perl" '
         BEGIN { while ((getline line < crcs) > 0) {
                   split(line, f, " "); if (f[2] != "-") { crc[f[1]] = f[2]; size[f[1]] = f[3] } } }
         $4 == "-" && (FNR in crc) && size[FNR] == $1 {
           rest = $0; for (i = 0; i < 4; i++) sub(/^[^ ]+ /, "", rest)
           print $1, $2, $3, crc[FNR], rest; next }
         { print }' "$HV_TMP/fs.list" > "$HV_TMP/fs.perl" \
      && mv "$HV_TMP/fs.perl" "$HV_TMP/fs.list" || hv_die "cannot write $HV_TMP"
  fi
  # The bit-reversed copies that cksum reads, and the headers, go to memory (/dev/shm) when
  # there is room.
  HVF_CRC=$(mktemp -d /dev/shm/havsh-crc.XXXXXX 2> /dev/null) || HVF_CRC=$HV_TMP
  _k=0
  while :; do
    # A batch: bit-reversed copies of the small files not in the cache, then one cksum for
    # all of them.
    : > "$HV_TMP/batch"
    _k=0; _bb=0
    while [ "$_k" -lt "$HV_BATCH" ] && [ "$_bb" -lt 25165824 ] && read -r _s _t _n _c _r; do
      hv_safe_name "$_r" || { hv_log "skipped a file with an unusual name in $HVF_DIR"; continue; }
      _k=$(( _k + 1 ))
      if [ "$_c" != - ]; then
        _big=2
      elif [ "$_s" -le 1048576 ]; then
        tr '\000-\377' "$HV_BITREV" < "$HVF_DIR/$_r" > "$HVF_CRC/r.$_k" 2>/dev/null \
          || rm -f "$HVF_CRC/r.$_k"
        _big=0; _bb=$(( _bb + _s ))
      else
        _big=1
      fi
      printf '%s %s %s %s %s %s %s\n' "$_k" "$_big" "$_n" "$_c" "$_s" "$_t" "$_r" >> "$HV_TMP/batch"
    done
    [ "$_k" -gt 0 ] || break
    set --
    while read -r _k _big _n _c _s _t _r; do
      [ "$_big" -eq 0 ] && [ -f "$HVF_CRC/r.$_k" ] && set -- "$@" "r.$_k"
    done < "$HV_TMP/batch"
    : > "$HV_TMP/ck"
    [ $# -gt 0 ] && (cd "$HVF_CRC" && cksum "$@") > "$HV_TMP/ck"
    exec 3< "$HV_TMP/ck"
    HVF_BSTART=$HV_OFF; HVF_BCD=$(wc -l < "$HV_CD"); HVF_BT0=$HV_T0; HVF_BFILES=0; HVF_BBYTES=0
    set --
    while read -r _k _big _n _c _s _t _r; do
      _f=$HVF_DIR/$_r
      if [ "$_big" -eq 2 ]; then
        [ -f "$_f" ] || { hv_log "skipped $_r (it vanished)"; continue; }
        HV_CRC=$_c; HV_SIZE=$_s
      elif [ "$_big" -eq 1 ]; then
        hv_crc_file "$_f" || { hv_log "skipped $_r (it vanished)"; continue; }
      elif [ -f "$HVF_CRC/r.$_k" ]; then
        read -r _ck _cs _x <&3 && [ "$_x" = "r.$_k" ] || hv_die "cksum failed in $HVF_CRC"
        HV_SIZE=$_cs
        hv_crc_from_cksum "$_ck" "$_cs"
      else
        hv_log "skipped $_r (it vanished)"; continue
      fi
      if [ "$HVF_TAR" -eq 1 ]; then
        hv_fs_header "filestore/$_r" "$_r" "$_n" "$HV_CRC" "$HV_SIZE"
      else
        hv_reset; hv_local_header "filestore/$_r" "$HV_CRC" "$HV_SIZE" -1
      fi
      printf "$HV_B" > "$HVF_CRC/h.$_k" || hv_die "cannot write $HVF_CRC"
      set -- "$@" "$HVF_CRC/h.$_k" "$_f"
      hv_cd_add "$HV_CRC" "$HV_SIZE" "$HV_SIZE" "$HV_OFF" 0 0 "filestore/$_r"
      [ "$HV_SIZE" = "$_s" ] && printf '%s %s %s %s\n' "$_r" "$_s" "$_t" "$HV_CRC" >> "$HV_TMP/crc.new"
      HV_OFF=$(( HV_OFF + HV_POS + HV_SIZE ))
      HVF_BFILES=$(( HVF_BFILES + 1 )); HVF_BBYTES=$(( HVF_BBYTES + HV_SIZE ))
    done < "$HV_TMP/batch"
    exec 3<&-
    rm -f "$HVF_CRC"/r.*
    [ $# -gt 0 ] && hv_fs_flush "$@"
  done < "$HV_TMP/fs.list"
  [ "$HVF_CRC" = "$HV_TMP" ] || rm -rf "$HVF_CRC"
  if [ "$HVF_TAR" -eq 1 ] && [ "$HV_T0" -ge 0 ]; then
    HV_TLEN=$(( HV_OFF - HV_T0 )); HV_TFILES=$HV_FILES
  fi
  return 0
}

# hv_fs_flush HEADER FILE ...: one cat writes a batch. If a file changed size meanwhile
# (the zip is not the size expected), the batch is undone and written again one file at a
# time, each copied to the exact size whose CRC was taken.
hv_fs_flush() {
  local _k _big _n _c _s _t _r _f
  if cat "$@" >> "$HV_ZIP" 2> "$HV_TMP/cat.err" && [ "$(wc -c < "$HV_ZIP")" -eq "$HV_OFF" ]; then
    HV_FILES=$(( HV_FILES + HVF_BFILES )); HV_FSBYTES=$(( HV_FSBYTES + HVF_BBYTES ))
    HV_PROGRESS=$(( HV_PROGRESS + HVF_BBYTES ))
    rm -f "$HVF_CRC"/h.*
    return 0
  fi
  grep -q -i 'space' "$HV_TMP/cat.err" 2>/dev/null && hv_write_failed filestore
  hv_log "a filestore file changed while it was read: writing this batch again"
  dd if=/dev/null of="$HV_ZIP" bs=1 seek="$HVF_BSTART" count=0 2>/dev/null || hv_write_failed filestore
  head -n "$HVF_BCD" "$HV_CD" > "$HV_TMP/cd.tmp" && mv "$HV_TMP/cd.tmp" "$HV_CD"
  HV_OFF=$HVF_BSTART; HV_T0=$HVF_BT0
  while read -r _k _big _n _c _s _t _r; do
    _f=$HVF_DIR/$_r
    hv_crc_file "$_f" || { hv_log "skipped $_r (it vanished)"; continue; }
    if [ "$HVF_TAR" -eq 1 ]; then hv_fs_header "filestore/$_r" "$_r" "$_n" "$HV_CRC" "$HV_SIZE"
    else hv_reset; hv_local_header "filestore/$_r" "$HV_CRC" "$HV_SIZE" -1; fi
    if ! { printf "$HV_B" && head -c "$HV_SIZE" "$_f"; } >> "$HV_ZIP"; then
      [ -f "$_f" ] && hv_write_failed "filestore/$_r"
      hv_log "skipped $_r (it vanished)"
      dd if=/dev/null of="$HV_ZIP" bs=1 seek="$HV_OFF" count=0 2>/dev/null
      [ "$HV_T0" -ge "$HV_OFF" ] && HV_T0=-1
      continue
    fi
    hv_cd_add "$HV_CRC" "$HV_SIZE" "$HV_SIZE" "$HV_OFF" 0 0 "filestore/$_r"
    HV_OFF=$(( HV_OFF + HV_POS + HV_SIZE ))
    HV_FILES=$(( HV_FILES + 1 )); HV_FSBYTES=$(( HV_FSBYTES + HV_SIZE ))
  done < "$HV_TMP/batch"
  rm -f "$HVF_CRC"/h.*
  [ "$(wc -c < "$HV_ZIP")" -eq "$HV_OFF" ] || hv_die "the filestore changed while it was written"
}

# zip_finish: the central directory and the end records.
zip_finish() {
  local _cdstart _count _cdsize _crc _cs _us _off _method _flags _name _n _x _xl _ec
  local _cd20 _cd45 _cdtime
  _cdstart=$HV_OFF; _count=0; _cdsize=0
  # The fixed start of every entry: signature, version made by, version needed.
  HV_B=; hv_e32 33639248; hv_e16 788; hv_e16 20; _cd20=$HV_B   # PK\1\2, 3.20, 2.0
  HV_B=; hv_e32 33639248; hv_e16 813; hv_e16 45; _cd45=$HV_B   # PK\1\2, 3.45, 4.5
  HV_B=; hv_e16 "$HV_DOSTIME"; hv_e16 "$HV_DOSDATE"; _cdtime=$HV_B
  while read -r _crc _cs _us _off _method _flags _name; do
    _n=${#_name}; _x=; _xl=0
    HV_B=
    if [ "$_us" -ge "$HV_Z64" ] || [ "$_cs" -ge "$HV_Z64" ] || [ "$_off" -ge "$HV_Z64" ]; then
      hv_reset
      [ "$_us" -ge "$HV_Z64" ] && { hv_le64 "$_us"; _xl=$(( _xl + 8 )); }
      [ "$_cs" -ge "$HV_Z64" ] && { hv_le64 "$_cs"; _xl=$(( _xl + 8 )); }
      [ "$_off" -ge "$HV_Z64" ] && { hv_le64 "$_off"; _xl=$(( _xl + 8 )); }
      _x="$HV_B"; HV_B=; hv_e16 1; hv_e16 "$_xl"; _x="$HV_B$_x"; _xl=$(( _xl + 4 ))
    fi
    if [ "$_xl" -gt 0 ] || [ "$_flags" -eq 8 ]; then HV_B=$_cd45; else HV_B=$_cd20; fi
    hv_e16 "$_flags"; hv_e16 "$_method"; HV_B="$HV_B$_cdtime"; hv_e32 "$_crc"
    if [ "$_cs" -ge "$HV_Z64" ]; then hv_e32 "$HV_M32"; else hv_e32 "$_cs"; fi
    if [ "$_us" -ge "$HV_Z64" ]; then hv_e32 "$HV_M32"; else hv_e32 "$_us"; fi
    hv_e16 "$_n"; hv_e16 "$_xl"; hv_e32 0; hv_e16 0; hv_e32 2175008768
    if [ "$_off" -ge "$HV_Z64" ]; then hv_e32 "$HV_M32"; else hv_e32 "$_off"; fi
    printf "$HV_B"; printf '%s' "$_name"; printf "$_x"
    _count=$(( _count + 1 )); _cdsize=$(( _cdsize + 46 + _n + _xl ))
  done < "$HV_CD" >> "$HV_ZIP" || hv_write_failed "the central directory"
  HV_OFF=$(( HV_OFF + _cdsize ))
  hv_reset
  if [ "$_count" -ge "$HV_Z64N" ] || [ "$_cdstart" -ge "$HV_Z64" ] || [ "$_cdsize" -ge "$HV_Z64" ]; then
    hv_le32 101075792; hv_le64 44; hv_le16 813; hv_le16 45; hv_le32 0; hv_le32 0
    hv_le64 "$_count"; hv_le64 "$_count"; hv_le64 "$_cdsize"; hv_le64 "$_cdstart"
    hv_le32 117853008; hv_le32 0; hv_le64 "$HV_OFF"; hv_le32 1
    _ec=65535; [ "$_count" -lt 65535 ] && _ec=$_count
    hv_le32 101010256; hv_le16 0; hv_le16 0; hv_le16 "$_ec"; hv_le16 "$_ec"
    hv_le32 "$HV_M32"; hv_le32 "$HV_M32"; hv_le16 0
  else
    hv_le32 101010256; hv_le16 0; hv_le16 0; hv_le16 "$_count"; hv_le16 "$_count"
    hv_le32 "$_cdsize"; hv_le32 "$_cdstart"; hv_le16 0
  fi
  printf "$HV_B" >> "$HV_ZIP" || hv_write_failed "the end of the zip"
  HV_OFF=$(( HV_OFF + HV_POS ))
  [ "$(wc -c < "$HV_ZIP")" -eq "$HV_OFF" ] || hv_write_failed "the central directory"
}

hv_sha256() { # FILE -> HV_SHA
  if command -v openssl > /dev/null 2>&1 && HV_SHA=$(openssl dgst -sha256 -r "$1" 2>/dev/null); then
    HV_SHA=${HV_SHA%% *}
  else
    HV_SHA=$(sha256sum "$1") || hv_die "sha256sum $1 failed"
    HV_SHA=${HV_SHA%% *}
  fi
  case $HV_SHA in *[!0-9a-f]*|'') hv_die "no sha256 for $1";; esac
}

# -- reading a zip ----------------------------------------------------------------------------
# The end records: "cd_offset cd_size count" (zip64 aware).
HV_EOCD_AWK='
{ for (i = 1; i <= NF; i++) b[n++] = $i }
function u(p, k,   v, j) { v = 0; for (j = k - 1; j >= 0; j--) v = v * 256 + b[p + j]; return v }
END {
  for (i = n - 22; i >= 0; i--)
    if (b[i] == 80 && b[i+1] == 75 && b[i+2] == 5 && b[i+3] == 6 && i + 22 + u(i + 20, 2) == n) break
  if (i < 0) { print "none"; exit }
  cnt = u(i + 10, 2); size = u(i + 12, 4); off = u(i + 16, 4)
  z = -1
  if (i >= 20 && b[i-20] == 80 && b[i-19] == 75 && b[i-18] == 6 && b[i-17] == 7) z = u(i - 12, 8)
  print off, size, cnt, z
}'
HV_Z64EOCD_AWK='
{ for (i = 1; i <= NF; i++) b[n++] = $i }
function u(p, k,   v, j) { v = 0; for (j = k - 1; j >= 0; j--) v = v * 256 + b[p + j]; return v }
END {
  if (n < 56 || b[0] != 80 || b[1] != 75 || b[2] != 6 || b[3] != 6) { print "none"; exit }
  print u(48, 8), u(40, 8), u(32, 8)
}'
# The central directory: one line per entry, "method flags crc csize usize offset name";
# a name outside the safe charset, absolute, or with an empty, . or .. part is printed as "?".
HV_CD_AWK='
BEGIN { for (c = 32; c < 127; c++) ch[c] = sprintf("%c", c) }
{ for (i = 1; i <= NF; i++) b[n++] = $i }
function u(p, k,   v, j) { v = 0; for (j = k - 1; j >= 0; j--) v = v * 256 + b[p + j]; return v }
END {
  p = 0; count = 0
  while (p + 46 <= n) {
    if (b[p] != 80 || b[p+1] != 75 || b[p+2] != 1 || b[p+3] != 2) { print "bad"; exit 1 }
    flags = u(p + 8, 2); method = u(p + 10, 2); crc = u(p + 16, 4)
    cs = u(p + 20, 4); us = u(p + 24, 4); nl = u(p + 28, 2); xl = u(p + 30, 2); cl = u(p + 32, 2)
    off = u(p + 42, 4)
    name = ""; ok = 1
    for (j = 0; j < nl; j++) {
      c = b[p + 46 + j]
      if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 46 || c == 95 || c == 45 || c == 47)) ok = 0
      else name = name ch[c]
    }
    if (!ok || nl == 0 || name ~ /^\// || name ~ /\/\// || name ~ /(^|\/)\.\.?(\/|$)/) name = "?"
    q = p + 46 + nl; e = q + xl
    while (q + 4 <= e) {
      id = u(q, 2); sz = u(q + 2, 2)
      if (id == 1) {
        r = q + 4
        if (us == 4294967295) { us = u(r, 8); r += 8 }
        if (cs == 4294967295) { cs = u(r, 8); r += 8 }
        if (off == 4294967295) { off = u(r, 8); r += 8 }
      }
      q += 4 + sz
    }
    printf "%d %d %.0f %.0f %.0f %.0f %s\n", method, flags, crc, cs, us, off, name
    p = e + cl; count++
  }
}'

# zip_index ZIP: the entries of a zip on stdout (see HV_CD_AWK), or die.
zip_index() {
  local _zsize _tl _cdoff _cdsize
  _zsize=$(wc -c < "$1") || hv_die "cannot read $1"
  [ "$_zsize" -ge 22 ] || hv_die "$1 is not a zip file (it is too small)"
  _tl=65557; [ "$_zsize" -lt "$_tl" ] && _tl=$_zsize
  # shellcheck disable=SC2046
  set -- "$1" $(tail -c "$_tl" "$1" | od -An -tu1 -v | awk "$HV_EOCD_AWK")
  [ "$2" != none ] && [ $# -eq 5 ] || hv_die "$1 is not a zip file (no end of central directory)"
  _cdoff=$2; _cdsize=$3
  if [ "$5" -ge 0 ]; then
    # shellcheck disable=SC2046
    set -- "$1" $(od -An -tu1 -v -j "$5" -N 56 "$1" | awk "$HV_Z64EOCD_AWK")
    [ "$2" != none ] || hv_die "$1: broken zip64 end record"
    _cdoff=$2; _cdsize=$3
  fi
  [ $(( _cdoff + _cdsize )) -le "$_zsize" ] || hv_die "$1 is truncated (the central directory is past its end)"
  tail -c +$(( _cdoff + 1 )) "$1" | head -c "$_cdsize" | od -An -tu1 -v | awk "$HV_CD_AWK" \
    || hv_die "$1: the central directory is damaged"
}

# zip_cat ZIP METHOD FLAGS CRC CSIZE USIZE OFFSET: one entry's data on stdout (deflate is
# checked by gzip against the CRC and size).
zip_cat() {
  local _start
  # shellcheck disable=SC2046
  set -- "$@" $(od -An -tu1 -v -j "$7" -N 30 "$1")
  [ $# -eq 37 ] && [ "$8" -eq 80 ] && [ "$9" -eq 75 ] && [ "${10}" -eq 3 ] && [ "${11}" -eq 4 ] \
    || hv_die "$1: no local header at offset $7"
  _start=$(( $7 + 30 + ${34} + (${35} << 8) + ${36} + (${37} << 8) ))
  case $2 in
    0) tail -c +$(( _start + 1 )) "$1" | head -c "$5" ;;
    8)
      hv_reset; hv_le32 "$4"; hv_le32 $(( $6 & HV_M32 ))
      { printf '\037\213\010\000\000\000\000\000\000\003'
        tail -c +$(( _start + 1 )) "$1" | head -c "$5"
        printf "$HV_B"; } | gzip -dc ;;
    *) hv_die "$1: compression method $2 is not supported (only stored and deflate)" ;;
  esac
}

# -- cron -------------------------------------------------------------------------------------
# Lines of the schedule file: "m h dom mon dow service args...": prints the lines whose five
# fields match the time given (-v mi= ho= dm= mo= dw=), without the five fields.
HV_CRON_AWK='
function fm(f, v, lo, hi,   parts, n, i, p, st, a, b, r, sp) {
  n = split(f, parts, ",")
  for (i = 1; i <= n; i++) {
    p = parts[i]; st = 1
    if (index(p, "/")) { split(p, sp, "/"); p = sp[1]; st = sp[2] + 0; if (st < 1) continue }
    if (p == "*") { a = lo; b = hi }
    else if (index(p, "-")) { split(p, r, "-"); a = r[1] + 0; b = r[2] + 0 }
    else { a = p + 0; b = (index(parts[i], "/") ? hi : a) }
    if (v >= a && v <= b && (v - a) % st == 0) return 1
  }
  return 0
}
/^[ \t]*(#|$)/ { next }
{
  okm = fm($1, mi + 0, 0, 59); okh = fm($2, ho + 0, 0, 23); okmo = fm($4, mo + 0, 1, 12)
  okd = fm($3, dm + 0, 1, 31); okw = fm($5, dw + 0, 0, 7) || (dw + 0 == 0 && fm($5, 7, 0, 7))
  if (substr($3, 1, 1) == "*" || substr($5, 1, 1) == "*") okday = okd && okw
  else okday = okd || okw
  if (okm && okh && okmo && okday) {
    line = $0
    for (k = 1; k <= 5; k++) sub(/^[ \t]*[^ \t]+[ \t]+/, "", line)
    print line
  }
}'
