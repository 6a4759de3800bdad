// placeholder: replaced by the work in progress
