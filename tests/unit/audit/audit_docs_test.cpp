// docs/audit.md's "Record schema" holds the table `kz audit schema` prints: a kind or a
// field added to the schema without the docs (or the other way round) fails here.
#include <gtest/gtest.h>

#include "audit/audit_schema.h"
#include "test_support.h"

namespace kz {
namespace {

TEST(AuditDocs, RecordSchemaSectionIsTheSchemaTable) {
  const std::string doc = test::read_file(std::string(KZ_SOURCE_DIR) + "/docs/audit.md");
  ASSERT_NE(doc.find("## Record schema"), std::string::npos) << "docs/audit.md has no \"Record schema\" section";
  const std::string table = audit_schema_markdown();
  EXPECT_NE(doc.find(table), std::string::npos)
      << "docs/audit.md's Record schema differs from the schema: replace the table there with the output of "
         "`kz audit schema`:\n"
      << table;
}

}  // namespace
}  // namespace kz
