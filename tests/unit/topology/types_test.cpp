#include <gtest/gtest.h>

#include "topowall/topology/duration.hpp"
#include "topowall/types.hpp"

using namespace topowall;

TEST(IpAddr, ParsesAndPrintsBothFamilies) {
  auto v4 = IpAddr::parse("10.1.2.3");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->is_v4());
  EXPECT_EQ(v4->to_string(), "10.1.2.3");
  auto v6 = IpAddr::parse("fd00::1");
  ASSERT_TRUE(v6);
  EXPECT_FALSE(v6->is_v4());
  EXPECT_EQ(v6->to_string(), "fd00::1");
  EXPECT_FALSE(IpAddr::parse("10.1.2"));
  EXPECT_FALSE(IpAddr::parse("x"));
  EXPECT_EQ(IpAddr::v4(0x0a000001).to_string(), "10.0.0.1");
}

TEST(Cidr, ContainsRespectsPrefixAndFamily) {
  auto c = Cidr::parse("10.0.0.0/8");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->contains(*IpAddr::parse("10.255.1.1")));
  EXPECT_FALSE(c->contains(*IpAddr::parse("11.0.0.1")));
  EXPECT_FALSE(c->contains(*IpAddr::parse("::ffff:10.0.0.1")));
  auto odd = Cidr::parse("192.168.1.77/20");
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->to_string(), "192.168.0.0/20");
  EXPECT_TRUE(odd->contains(*IpAddr::parse("192.168.15.255")));
  EXPECT_FALSE(odd->contains(*IpAddr::parse("192.168.16.0")));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/33"));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/"));
  EXPECT_TRUE(Cidr::parse("fd00::/8")->contains(*IpAddr::parse("fdab::1")));
  EXPECT_TRUE(Cidr::parse("0.0.0.0/0")->contains(*IpAddr::parse("1.2.3.4")));
}

TEST(Proto, RoundTrips) {
  for (int n : {1, 6, 17, 58, 132}) {
    auto p = proto_from_number(n);
    ASSERT_TRUE(p);
    EXPECT_EQ(parse_proto(to_string(*p)), p);
  }
  EXPECT_FALSE(proto_from_number(47));
  EXPECT_FALSE(parse_proto("gre"));
  EXPECT_EQ(parse_mode("enforce"), Mode::enforce);
  EXPECT_FALSE(parse_mode("block"));
}

TEST(Duration, ParsesUnitsAndRejectsJunk) {
  using std::chrono::seconds;
  EXPECT_EQ(topology::parse_duration("90s"), seconds(90));
  EXPECT_EQ(topology::parse_duration("15m"), seconds(900));
  EXPECT_EQ(topology::parse_duration("1h30m"), seconds(5400));
  EXPECT_EQ(topology::parse_duration("7d"), seconds(7 * 86400));
  EXPECT_EQ(topology::parse_duration("42"), seconds(42));
  EXPECT_FALSE(topology::parse_duration(""));
  EXPECT_FALSE(topology::parse_duration("m"));
  EXPECT_FALSE(topology::parse_duration("5x"));
  EXPECT_EQ(topology::format_duration(seconds(3725)), "1h2m");
}
