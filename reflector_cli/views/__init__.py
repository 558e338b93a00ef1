"""What people see: live progress, terminal views, file formats on disk and the HTML report."""
