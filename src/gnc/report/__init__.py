"""Reports: pure plot functions and the HTML report of `gnc reproduce`."""
